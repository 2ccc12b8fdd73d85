/**
 * The JetStream stream every telemetry batch goes through (docs/telemetry-path.md). Retention is *limits*
 * (max age, max bytes), not work-queue: ingestion and the federation uplink read it independently through
 * their own durable consumers, and each one's pending count is its real backlog.
 */
import { DiscardPolicy, type JetStreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";

export const TELEMETRY_STREAM = "TELEMETRY";
export const TELEMETRY_KINDS = ["metrics", "logs", "inventory", "scans", "snmp"] as const;
export type TelemetryKind = (typeof TELEMETRY_KINDS)[number];

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

/** Creates the stream, or updates its limits when they changed; idempotent, safe from several processes. */
export async function ensureTelemetryStream(jsm: JetStreamManager, limits: StreamLimits): Promise<void> {
  const cfg = {
    name: TELEMETRY_STREAM,
    subjects: TELEMETRY_KINDS.map((k) => `secumon.${k}.>`),
    retention: RetentionPolicy.Limits,
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
    if (
      c.max_age !== cfg.max_age ||
      c.max_bytes !== cfg.max_bytes ||
      c.duplicate_window !== cfg.duplicate_window
    ) {
      await jsm.streams.update(TELEMETRY_STREAM, { ...c, ...cfg });
    }
  } catch (err) {
    if (!/stream not found/i.test(String(err))) throw err;
    await jsm.streams.add(cfg);
  }
}
