/**
 * The JetStream stream every telemetry batch goes through (docs/telemetry-path.md).
 *
 * Retention is *interest*, bounded by max age and max bytes, with discard-new: a batch stays until every durable
 * consumer (ingestion, per kind; the uplink on an edge appliance) has acknowledged it, so each consumer's
 * pending count is its real backlog, and the stream is "full" only when a consumer lags — then the gateway
 * answers RESOURCE_EXHAUSTED and agents keep their batches. (Limits retention, the first design, filled the
 * stream under steady load even with every batch consumed: acknowledged batches kept counting toward max_bytes
 * until they aged out.) Interest retention drops a message no consumer is interested in, so the durable
 * ingestion consumers are created together with the stream, by whichever process starts first.
 *
 * Shards (optional, default 1 = the single stream above): with `sync_interval: always` nats-server fsyncs every
 * stored message and one stream stores one message at a time, so one stream's batches/s is the disk's serial
 * fsync rate (nats-server 2.12 filestore; atomic batches fsync per message too — bench/gateway-jetstream.ts).
 * Separate streams fsync in parallel. Shard k ≥ 1 is the stream `TELEMETRY_<k>`: the gateway publishes a
 * source's batches to `secumon-shard.<k>.<kind>.<tenant>.<source>` (k = a hash of the source id, so its
 * dedup window stays in one stream), and the stream's subject transform stores them under the usual
 * `secumon.<kind>.<tenant>.<source>`, with the same headers and the same durable `ingest-<kind>` consumers.
 * A consumer reads one stream, so the ingestion consumes every TELEMETRY/TELEMETRY_<k> stream it finds (looked
 * for again every 30 s); `nats.telemetry_shards` sets how many the gateway publishes to.
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { CollectorError } from "../lib/errors.ts";

export const TELEMETRY_STREAM = "TELEMETRY";
export const TELEMETRY_KINDS = ["metrics", "logs", "inventory", "scans", "snmp"] as const;
export type TelemetryKind = (typeof TELEMETRY_KINDS)[number];

/** The durable consumer the ingestion workers share for one kind. */
export const ingestConsumerName = (kind: TelemetryKind): string => `ingest-${kind}`;

/** The stream of each shard: shard 0 is TELEMETRY itself. */
export function telemetryStreamName(shard: number): string {
  return shard === 0 ? TELEMETRY_STREAM : `${TELEMETRY_STREAM}_${shard}`;
}

export function telemetryStreams(shards = 1): string[] {
  return Array.from({ length: Math.max(1, shards) }, (_, k) => telemetryStreamName(k));
}

/** The shard of a source (FNV-1a of its id): stable, so a resent batch meets its dedup window. */
export function telemetryShard(sourceId: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < sourceId.length; i++) h = Math.imul(h ^ sourceId.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}

const SHARD_PREFIX = "secumon-shard";

/**
 * The subject the gateway publishes a batch on: the stored subject itself for shard 0, else the shard's
 * intake subject (stored as `secumon.<kind>.<tenant>.<source>` by the shard stream's subject transform).
 */
export function telemetryPublishSubject(
  kind: TelemetryKind,
  tenantId: string,
  sourceId: string,
  shards = 1,
): string {
  const k = telemetryShard(sourceId, shards);
  return k === 0
    ? telemetrySubject(kind, tenantId, sourceId)
    : `${SHARD_PREFIX}.${k}.${kind}.${tenantId}.${sourceId}`;
}

/** `secumon.<kind>.<tenant_id>.<source_id>` */
export function telemetrySubject(kind: TelemetryKind, tenantId: string, sourceId: string): string {
  return `secumon.${kind}.${tenantId}.${sourceId}`;
}

export function parseTelemetrySubject(
  subject: string,
): { kind: TelemetryKind; tenantId: string; sourceId: string } | null {
  const p = subject.split(".");
  if (p.length !== 4 || p[0] !== "secumon" || !TELEMETRY_KINDS.includes(p[1] as TelemetryKind)) return null;
  return { kind: p[1] as TelemetryKind, tenantId: p[2]!, sourceId: p[3]! };
}

/** Headers on each telemetry message (see docs/telemetry-path.md). */
export const H = {
  batchId: "Secumon-Batch-Id",
  tenant: "Secumon-Tenant",
  source: "Secumon-Source",
  sourceType: "Secumon-Source-Type",
  compression: "Secumon-Compression",
  uncompressedSize: "Secumon-Uncompressed-Size",
  receivedAt: "Secumon-Received-At",
} as const;

export interface StreamLimits {
  maxAgeMs: number;
  /** 0 = unlimited (bounded by the server's max_file_store) */
  maxBytes: number;
  duplicateWindowMs?: number;
  /** streams (default 1); see the header */
  shards?: number;
}

/**
 * Creates the stream and the ingestion consumers, or updates the stream's limits when they changed; idempotent,
 * safe from several processes. The ingestion role tunes its consumers (ack wait, max ack pending) afterwards.
 */
export async function ensureTelemetryStream(jsm: JetStreamManager, limits: StreamLimits): Promise<void> {
  const shards = Math.max(1, limits.shards ?? 1);
  for (let k = 0; k < shards; k++) {
    // max_bytes is per stream: the installation's budget is split between the shards
    const maxBytes = limits.maxBytes > 0 ? Math.max(1, Math.floor(limits.maxBytes / shards)) : 0;
    await ensureShard(jsm, k, { ...limits, maxBytes });
  }
}

async function ensureShard(jsm: JetStreamManager, shard: number, limits: StreamLimits): Promise<void> {
  const name = telemetryStreamName(shard);
  const cfg = {
    name,
    ...(shard === 0
      ? { subjects: TELEMETRY_KINDS.map((k) => `secumon.${k}.>`) }
      : {
          subjects: [`${SHARD_PREFIX}.${shard}.*.*.*`],
          subject_transform: {
            src: `${SHARD_PREFIX}.${shard}.*.*.*`,
            dest: "secumon.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}",
          },
        }),
    retention: RetentionPolicy.Interest,
    storage: StorageType.File,
    discard: DiscardPolicy.New, // a full stream refuses new batches (back-pressure) instead of dropping old ones
    max_age: limits.maxAgeMs * 1_000_000, // nanoseconds
    max_bytes: limits.maxBytes > 0 ? limits.maxBytes : -1,
    duplicate_window: (limits.duplicateWindowMs ?? 120_000) * 1_000_000,
    num_replicas: 1,
  };
  try {
    const info = await jsm.streams.info(name);
    const c = info.config;
    if (c.retention !== cfg.retention) {
      throw new CollectorError(
        "CONFIG_INVALID",
        `the JetStream stream ${name} was created with ${c.retention} retention by an older collector; ` +
          `this one needs ${cfg.retention}. Let the ingestion workers drain it (pending 0), then delete it ` +
          `(nats stream rm ${name}) and start again: it is recreated.`,
      );
    }
    if (
      c.max_age !== cfg.max_age ||
      c.max_bytes !== cfg.max_bytes ||
      c.duplicate_window !== cfg.duplicate_window
    ) {
      await jsm.streams.update(name, { ...c, ...cfg });
    }
  } catch (err) {
    if (!/stream not found/i.test(String(err))) throw err;
    await jsm.streams.add(cfg).catch((e) => {
      if (!/already in use|already exists/i.test(String(e))) throw e; // another process created it first
    });
  }
  for (const kind of TELEMETRY_KINDS) {
    const durable = ingestConsumerName(kind);
    try {
      await jsm.consumers.info(name, durable);
    } catch (err) {
      if (!/consumer not found/i.test(String(err))) throw err;
      await jsm.consumers
        .add(name, {
          durable_name: durable,
          filter_subject: `secumon.${kind}.>`,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          max_deliver: -1,
        })
        .catch((e) => {
          if (!/already in use|already exists/i.test(String(e))) throw e;
        });
    }
  }
}
