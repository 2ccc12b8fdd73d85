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
}

/**
 * Creates the stream and the ingestion consumers, or updates the stream's limits when they changed; idempotent,
 * safe from several processes. The ingestion role tunes its consumers (ack wait, max ack pending) afterwards.
 */
export async function ensureTelemetryStream(jsm: JetStreamManager, limits: StreamLimits): Promise<void> {
  const cfg = {
    name: TELEMETRY_STREAM,
    subjects: TELEMETRY_KINDS.map((k) => `secumon.${k}.>`),
    retention: RetentionPolicy.Interest,
    storage: StorageType.File,
    discard: DiscardPolicy.New, // a full stream refuses new batches (back-pressure) instead of dropping old ones
    max_age: limits.maxAgeMs * 1_000_000, // nanoseconds
    max_bytes: limits.maxBytes > 0 ? limits.maxBytes : -1,
    duplicate_window: (limits.duplicateWindowMs ?? 120_000) * 1_000_000,
    num_replicas: 1,
  };
  try {
    const info = await jsm.streams.info(TELEMETRY_STREAM);
    const c = info.config;
    if (c.retention !== cfg.retention) {
      throw new CollectorError(
        "CONFIG_INVALID",
        `the JetStream stream ${TELEMETRY_STREAM} was created with ${c.retention} retention by an older collector; ` +
          `this one needs ${cfg.retention}. Let the ingestion workers drain it (pending 0), then delete it ` +
          `(nats stream rm ${TELEMETRY_STREAM}) and start again: it is recreated.`,
      );
    }
    if (
      c.max_age !== cfg.max_age ||
      c.max_bytes !== cfg.max_bytes ||
      c.duplicate_window !== cfg.duplicate_window
    ) {
      await jsm.streams.update(TELEMETRY_STREAM, { ...c, ...cfg });
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
      await jsm.consumers.info(TELEMETRY_STREAM, durable);
    } catch (err) {
      if (!/consumer not found/i.test(String(err))) throw err;
      await jsm.consumers
        .add(TELEMETRY_STREAM, {
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
