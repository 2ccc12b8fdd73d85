/** A real gateway on a free port against the run's PostgreSQL and nats-server, plus tenants and tokens. */
import { randomBytes } from "node:crypto";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "../../src/bus/connect.ts";
import { ensureTelemetryStream } from "../../src/bus/telemetry.ts";
import { loadConfig } from "../../src/config/load.ts";
import { createGateway, type GatewayService } from "../../src/gateway/index.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { Registry } from "../../src/observability/metrics.ts";
import { generateEnrollmentToken } from "../../src/pki/tokens.ts";
import { createKeyring } from "../../src/security/keyring.ts";
import { enroll, type Identity } from "../../src/simulator/client.ts";
import { type Sql, withAdmin } from "../../src/storage/db.ts";
import { testNats } from "../support/nats.ts";
import { migratedSql } from "../support/pg.ts";
import { tempDir } from "../support/tmp.ts";

export interface Harness {
  sql: Sql;
  nc: NatsConnection;
  gw: GatewayService;
  address: string;
  metrics: Registry;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  /** a nats-server of the test's own (default: the run's shared one) */
  natsUrl?: string;
  /** TELEMETRY max_bytes (0 = unlimited) — only meaningful on a server of the test's own */
  streamMaxBytes?: number;
  /** the database of another harness (a second gateway instance of the same collector) */
  sql?: Sql;
  /** TELEMETRY shards (src/bus/telemetry.ts) — only on a server of the test's own */
  shards?: number;
}

const keyrings = new WeakMap<Sql, ReturnType<typeof createKeyring>>();

export async function startGateway(
  gateway: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
  o: HarnessOptions = {},
): Promise<Harness> {
  const sql = o.sql ?? (await migratedSql()).sql;
  const natsUrl = o.natsUrl ?? (await testNats());
  const log = silentLogger();
  const nc = await connectNats(natsUrl, "gateway-test", log);
  await ensureTelemetryStream(await jetstreamManager(nc), {
    maxAgeMs: 3_600_000,
    maxBytes: o.streamMaxBytes ?? 0,
    shards: o.shards ?? 1,
  });
  const config = loadConfig({
    env: {},
    overrides: {
      data_dir: tempDir("secumon-gw-"),
      gateway: { grpc_port: 0, ...gateway },
      nats: { telemetry_shards: o.shards ?? 1 }, // the streams ensured above
      ...extra,
    },
  });
  const metrics = new Registry();
  let keyring = keyrings.get(sql);
  if (!keyring) {
    keyring = createKeyring(randomBytes(32));
    keyrings.set(sql, keyring); // a second instance on the same database unseals the same CA key
  }
  const gw = createGateway({
    config,
    log,
    metrics,
    sql,
    nats: nc,
    keyring,
  });
  await gw.start();
  return {
    sql,
    nc,
    gw,
    address: `localhost:${gw.port}`,
    metrics,
    async stop() {
      await gw.stop();
      await nc.close();
    },
  };
}

export async function createTenant(sql: Sql, slug = `t${randomBytes(5).toString("hex")}`): Promise<string> {
  const [t] = await withAdmin(
    sql,
    (tx) => tx<{ id: string }[]>`insert into tenants (name, slug) values (${slug}, ${slug}) returning id`,
  );
  return t!.id;
}

export interface TokenOptions {
  kind?: "agent" | "probe" | "collector";
  maxUses?: number | null;
  expiresInMs?: number;
  revoked?: boolean;
}

export async function createToken(sql: Sql, tenantId: string, o: TokenOptions = {}): Promise<string> {
  const { token, hash } = generateEnrollmentToken();
  await withAdmin(
    sql,
    (
      tx,
    ) => tx`insert into enrollment_tokens (tenant_id, label, principal_kind, token_hash, expires_at, max_uses, revoked_at)
      values (${tenantId}, 'test', ${o.kind ?? "agent"}, ${hash}, ${new Date(Date.now() + (o.expiresInMs ?? 3_600_000))},
              ${o.maxUses === undefined ? 100 : o.maxUses}, ${o.revoked ? new Date() : null})`,
  );
  return token;
}

/** Reads every message of a subject filter from the TELEMETRY stream (ordered consumer). */
export async function telemetryMessages(
  nc: NatsConnection,
  filter: string,
  expect: number,
  timeoutMs = 10_000,
  stream = "TELEMETRY",
) {
  const js = jetstream(nc);
  const c = await js.consumers.get(stream, { filter_subjects: [filter] });
  const out: { subject: string; headers: Record<string, string>; data: Uint8Array }[] = [];
  if (expect === 0) return out;
  const iter = await c.consume({ expires: Math.min(timeoutMs, 30_000) });
  const timer = setTimeout(() => iter.stop(), timeoutMs);
  for await (const m of iter) {
    const headers: Record<string, string> = {};
    for (const [k, v] of m.headers ?? []) headers[k] = v[0] ?? "";
    out.push({ subject: m.subject, headers, data: m.data });
    if (out.length >= expect) break;
  }
  clearTimeout(timer);
  iter.stop();
  return out;
}

/** How many messages the TELEMETRY stream holds for a subject filter. */
export async function countMessages(
  nc: NatsConnection,
  filter: string,
  stream = "TELEMETRY",
): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream, { subjects_filter: filter });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}

/** A new agent of `tenantId`, enrolled through the harness's gateway with a token of its own. */
export async function enrollAgent(h: Harness, tenantId: string): Promise<Identity> {
  return enroll({ address: h.address, caPem: h.gw.caPem, token: await createToken(h.sql, tenantId) });
}

/** An agent's presence columns, as the gateway writes them (a refused call must leave them as they were). */
export async function agentPresence(
  sql: Sql,
  id: string,
): Promise<{ status: string; last_seen: Date | null } | undefined> {
  const [row] = await withAdmin(
    sql,
    (tx) =>
      tx<{ status: string; last_seen: Date | null }[]>`select status, last_seen from agents where id = ${id}`,
  );
  return row;
}
