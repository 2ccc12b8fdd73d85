/**
 * Ingestion test harness: a private nats-server (the shared test one carries other suites' TELEMETRY traffic,
 * which our consumers would drain), a migrated database with a tenant/agent/probe/target, the ingestion
 * service built from a real RoleContext, and a publisher that mimics the gateway (headers of
 * docs/telemetry-path.md, Nats-Msg-Id, JetStream acknowledgement).
 */
import { type JetStreamClient, jetstream, jetstreamManager, type PubAck } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import type { Sql } from "postgres";
import type { RoleContext } from "../../src/app/role.ts";
import { ensureTelemetryStream, H, type TelemetryKind, telemetrySubject } from "../../src/bus/telemetry.ts";
import type { Config } from "../../src/config/schema.ts";
import { createIngestion } from "../../src/ingestion/service.ts";
import type { Service } from "../../src/lib/lifecycle.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { Registry } from "../../src/observability/metrics.ts";
import { type Compression, compress, encodePayload, type PayloadFor } from "../../src/protocol/index.ts";
import { testConfig } from "../support/collector.ts";
import { type PrivateNats, privateNats } from "../support/nats.ts";
import { migratedSql } from "../support/pg.ts";
import { type Fixture, seed } from "./fixtures.ts";

export interface Harness {
  sql: Sql;
  f: Fixture;
  nats: PrivateNats;
  nc: NatsConnection;
  js: JetStreamClient;
  metrics: Registry;
  config: Config;
  service: Service;
  close(): Promise<void>;
}

export async function harness(overrides: Record<string, unknown> = {}, streamMaxBytes = 0): Promise<Harness> {
  const [{ sql }, nats] = await Promise.all([migratedSql(), privateNats()]);
  const f = await seed(sql);
  const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  await ensureTelemetryStream(await jetstreamManager(nc), { maxAgeMs: 3_600_000, maxBytes: streamMaxBytes });
  const config = testConfig({
    ...overrides,
    ingestion: { ack_wait: "5s", ...(overrides.ingestion as object) },
    retention: { raw: "3d", logs: "3d", ...(overrides.retention as object) },
  });
  const metrics = new Registry();
  const ctx = {
    config,
    log: silentLogger(),
    metrics,
    sql,
    natsUrl: nats.url,
    nats: nc,
    keyring: null as never,
    dataDir: config.data_dir,
    http: null as never,
  } satisfies RoleContext;
  const service = createIngestion(ctx, { streamScanMs: 300 });
  await service.start();
  return {
    sql,
    f,
    nats,
    nc,
    js: jetstream(nc),
    metrics,
    config,
    service,
    async close() {
      const t0 = performance.now();
      await service.stop();
      const t1 = performance.now();
      await nc.close();
      await nats.child.stop();
      if (process.env.SECUMON_TEST_VERBOSE) console.log("close", t1 - t0, performance.now() - t1);
    },
  };
}

export interface PublishOptions<K extends TelemetryKind> {
  kind: K;
  tenant: string;
  source: string;
  payload: PayloadFor<K>;
  compression?: Compression;
  batchId?: string;
  msgId?: string;
  /** raw body instead of the encoded payload */
  body?: Uint8Array;
  declaredSize?: number;
  extraHeaders?: Record<string, string>;
  /** publish subject instead of secumon.<kind>.<tenant>.<source> (a TELEMETRY shard's intake subject) */
  subject?: string;
}

/** Publishes one batch like the gateway does; resolves with JetStream's acknowledgement. */
export function publish<K extends TelemetryKind>(js: JetStreamClient, o: PublishOptions<K>): Promise<PubAck> {
  const raw = encodePayload(o.kind, o.payload);
  const compression = o.compression ?? "lz4";
  const body = o.body ?? compress(compression, raw);
  const batchId = o.batchId ?? crypto.randomUUID();
  const h = headers();
  h.set(H.batchId, batchId);
  h.set(H.tenant, o.tenant);
  h.set(H.source, o.source);
  h.set(H.sourceType, o.kind === "scans" || o.kind === "snmp" ? "probe" : "agent");
  h.set(H.compression, compression);
  h.set(H.uncompressedSize, String(o.declaredSize ?? raw.byteLength));
  h.set(H.receivedAt, String(Date.now()));
  for (const [k, v] of Object.entries(o.extraHeaders ?? {})) h.set(k, v);
  return js.publish(o.subject ?? telemetrySubject(o.kind, o.tenant, o.source), body, {
    headers: h,
    msgID: o.msgId ?? `${o.source}:${batchId}`,
  });
}

export async function countRows(sql: Sql, table: string, where = sql`true`): Promise<number> {
  return (await sql<{ n: number }[]>`select count(*)::int as n from ${sql(table)} where ${where}`)[0]!.n;
}

/** Rows of a tenant's metrics samples (system + disk + network): what the simulator counts as acked samples. */
export async function metricRows(sql: Sql, tenant: string): Promise<number> {
  const [r] = await sql<{ n: number }[]>`
    select (select count(*) from system_metrics where tenant_id = ${tenant})
         + (select count(*) from disk_metrics where tenant_id = ${tenant})
         + (select count(*) from network_metrics where tenant_id = ${tenant}) as n`;
  return Number(r?.n ?? 0);
}
