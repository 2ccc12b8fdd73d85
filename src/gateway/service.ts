/**
 * The gateway service: loads (or creates) the collector CA, gets a server certificate, binds the grpc-js
 * server with TLS (client certificates requested, verified against the CA), and wires authentication,
 * limits, intake, presence, revocation and the Connect control channel. Start order: CA → server cert →
 * EVENTS stream → LISTEN (principal changes, agent configuration changes) → bind;
 * stop is the reverse, bounded.
 */
import { readFileSync } from "node:fs";
import { Server } from "@grpc/grpc-js";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Sql } from "postgres";
import { ensureEventsStream, publishPrincipalEvent } from "../bus/events.ts";
import { type Config, parseDuration } from "../config/schema.ts";
import { CollectorError } from "../lib/errors.ts";
import type { Service } from "../lib/lifecycle.ts";
import type { Logger } from "../observability/logger.ts";
import type { Registry } from "../observability/metrics.ts";
import { type CertificateAuthority, loadOrCreateCa } from "../pki/ca.ts";
import { serviceDefinition } from "../protocol/grpc.ts";
import type { Keyring } from "../security/keyring.ts";
import { Principals } from "./auth.ts";
import { ControlChannels } from "./control.ts";
import { gatewayCredentials } from "./credentials.ts";
import { Enroller } from "./enroll.ts";
import { agentHandlers, probeHandlers } from "./handlers.ts";
import { Intake } from "./intake.ts";
import { CallCounter, RateLimiter } from "./limits.ts";
import { gatewayMetrics } from "./metrics.ts";
import { Presence } from "./presence.ts";
import { redisPresence } from "./presence-redis.ts";
import { certificateNames } from "./server-names.ts";

export interface GatewayDeps {
  config: Config;
  log: Logger;
  metrics: Registry;
  sql: Sql;
  nats: NatsConnection | null;
  keyring: Keyring;
}

export interface GatewayService extends Service {
  /** The bound gRPC port (after start). */
  readonly port: number;
  /** The CA agents must trust (after start). */
  readonly caPem: string;
  readonly ca: CertificateAuthority | null;
}

export function createGateway(deps: GatewayDeps): GatewayService {
  const g = deps.config.gateway;
  // the collector's role logger already says role=gateway; a gateway built on its own (tests, bench) adds it
  const log = deps.log.bindings().role ? deps.log : deps.log.child({ role: "gateway" });
  const m = gatewayMetrics(deps.metrics);
  let server: Server | null = null;
  let presence: Presence | null = null;
  let principals: Principals | null = null;
  let control: ControlChannels | null = null;
  let sweeper: ReturnType<typeof setInterval> | null = null;
  let ca: CertificateAuthority | null = null;
  let port = 0;
  let ready = false;
  let starting: Promise<void> | null = null;

  async function doStart(): Promise<void> {
    if (!deps.nats)
      throw new CollectorError("INTERNAL", "the gateway needs NATS, but no connection was given");
    ca = await loadOrCreateCa(deps.sql, deps.keyring, log, {
      certFile: g.tls.ca_file,
      keyFile: g.tls.ca_key_file,
    });
    let certPem: string;
    let keyPem: string;
    let certNames: string[] = g.tls.server_names; // what the certificate in use names (informational)
    if (g.tls.cert_file || g.tls.key_file) {
      try {
        certPem = readFileSync(g.tls.cert_file, "utf8");
        keyPem = readFileSync(g.tls.key_file, "utf8");
      } catch (err) {
        throw new CollectorError(
          "CONFIG_INVALID",
          `cannot read gateway.tls.cert_file/key_file (${String(err).slice(0, 120)}); set both to PEM files, or leave both empty to use a certificate from the collector CA`,
        );
      }
    } else {
      certNames = certificateNames(g.host, g.tls.server_names);
      const issued = await ca.issueServer(certNames, parseDuration(g.tls.server_cert_validity));
      certPem = issued.certPem;
      keyPem = issued.keyPem;
    }
    const js = jetstream(deps.nats);
    await ensureEventsStream(await jetstreamManager(deps.nats));

    principals = new Principals(deps.sql, log);
    // several gateways share online/offline through Redis; one alone decides in memory
    const shared = deps.config.redis.url ? await redisPresence(deps.config.redis.url) : null;
    presence = new Presence({
      shared,
      sql: deps.sql,
      js,
      log,
      offlineAfterMs: parseDuration(g.offline_after),
      writeIntervalMs: parseDuration(g.last_seen_write_interval),
    });
    const pr = presence;
    await principals.listen((n) => {
      if (n.status === "revoked" || n.status === "deleted" || n.status === "disabled") {
        pr.forget({ kind: n.kind as "agent", id: n.id, tenantId: n.tenant_id });
        void publishPrincipalEvent(js, {
          kind: n.kind as "agent",
          id: n.id,
          tenant_id: n.tenant_id,
          status: n.status as "revoked",
          at: new Date().toISOString(),
        }).catch(() => {});
      }
    });
    presence.start();
    control = new ControlChannels(deps.sql, log);
    await control.listen();

    const rl = g.rate_limiting;
    const batchLimiter = rl.enabled ? new RateLimiter(rl.requests_per_second, rl.burst) : null;
    const enrollFailures = new RateLimiter(
      g.enrollment_failures_per_minute / 60,
      g.enrollment_failures_per_minute,
    );
    sweeper = setInterval(() => {
      batchLimiter?.sweep();
      enrollFailures.sweep();
    }, 60_000);
    sweeper.unref?.();
    const handlerDeps = {
      sql: deps.sql,
      log,
      principals,
      control,
      enroller: new Enroller({
        sql: deps.sql,
        ca,
        log,
        clientCertValidityMs: parseDuration(g.tls.client_cert_validity),
        wireguardEnabled: deps.config.wireguard.enabled,
      }),
      intake: new Intake({
        js,
        maxUncompressedBytes: g.max_uncompressed_bytes,
        shards: deps.config.nats.telemetry_shards,
      }),
      presence,
      calls: new CallCounter(g.max_connections, g.max_streams_per_source),
      batchLimiter,
      enrollFailures,
      metrics: m,
      maxInflightPerStream: 32,
    };

    server = new Server({
      "grpc.max_receive_message_length": g.max_message_bytes,
      "grpc.max_send_message_length": 4 * 1024 * 1024,
      "grpc.keepalive_time_ms": 60_000,
      "grpc.keepalive_timeout_ms": 20_000,
      "grpc.keepalive_permit_without_calls": 1,
      // gateway.idle_timeout: a connection with no call is closed (GOAWAY; clients reconnect on their next
      // call): idle connections, from agents between unary calls or from anyone without a certificate, do not pile up
      "grpc.max_connection_idle_ms": parseDuration(g.idle_timeout),
      "grpc.http2.min_ping_interval_without_data_ms": 10_000,
      "grpc.max_concurrent_streams": 64,
    });
    server.addService(serviceDefinition("AgentService"), agentHandlers(handlerDeps));
    server.addService(serviceDefinition("ProbeService"), probeHandlers(handlerDeps));
    const creds = gatewayCredentials(ca.certPem, certPem, keyPem);
    const srv = server;
    port = await new Promise<number>((resolve, reject) =>
      srv.bindAsync(`${g.host}:${g.grpc_port}`, creds, (err, p) => {
        if (err) {
          reject(
            new CollectorError(
              "PORT_IN_USE",
              `the gateway cannot listen on ${g.host}:${g.grpc_port} (${err.message}); free the port or set gateway.grpc_port`,
              { cause: err },
            ),
          );
        } else resolve(p);
      }),
    );
    ready = true;
    log.info({ host: g.host, port, names: certNames }, `gateway listening on ${g.host}:${port} (gRPC, mTLS)`);
  }

  async function doStop(): Promise<void> {
    ready = false;
    presence?.beginStop(); // before the server closes the streams: it remembers who held one
    if (sweeper) clearInterval(sweeper);
    sweeper = null;
    const srv = server;
    server = null;
    if (srv) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          srv.forceShutdown();
          resolve();
        }, 3000);
        srv.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    await control?.stop(); // the reverse of start: the last LISTEN opened is the first closed
    control = null;
    await presence?.stop();
    presence = null;
    await principals?.stop();
    principals = null;
  }

  return {
    name: "role:gateway",
    get port() {
      return port;
    },
    get caPem() {
      return ca?.certPem ?? "";
    },
    get ca() {
      return ca;
    },
    async start() {
      starting ??= doStart().catch(async (err) => {
        await doStop();
        starting = null;
        throw err;
      });
      return starting;
    },
    async stop() {
      await starting?.catch(() => {});
      starting = null;
      await doStop();
    },
    readiness: () => (ready ? null : "gateway: gRPC server not listening yet"),
  };
}
