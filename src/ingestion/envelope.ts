/**
 * One JetStream message = one batch (docs/telemetry-path.md). Parses and checks the subject and headers, then
 * decompresses (bounded) and decodes the payload with the gateway's protocol module. Anything wrong here is
 * permanent for that message: it is dead-lettered with the reason, never retried.
 */
import { H, parseTelemetrySubject, type TelemetryKind } from "../bus/telemetry.ts";
import { decompressBounded, isProtocolError, type PayloadFor, payloadType } from "../protocol/index.ts";
import { isUuid } from "../telemetry/validate.ts";

/** What the ingestion pipeline needs of a JetStream message (JsMsg fits). */
export interface InMsg {
  subject: string;
  data: Uint8Array;
  headers?: { get(name: string): string } | undefined;
  seq: number;
  ack(): void;
  nak(millis?: number): void;
  working(): void;
}

export interface Envelope {
  kind: TelemetryKind;
  tenantId: string;
  sourceId: string;
  batchId: string;
  compression: string;
  declaredSize: number;
  /** Gateway receive time (ms), when present. */
  receivedAt: number | null;
}

export type DeadReason =
  | "bad_subject"
  | "bad_headers"
  | "unknown_compression"
  | "size_mismatch"
  | "too_large"
  | "corrupt_compressed"
  | "malformed_protobuf"
  | "unknown_kind"
  | "unknown_source"
  | "write_failed";

export class DeadLetter extends Error {
  override readonly name = "DeadLetter";
  constructor(
    readonly reason: DeadReason,
    message: string,
  ) {
    super(message);
  }
}

const header = (m: InMsg, name: string): string => m.headers?.get(name) ?? "";

export function parseEnvelope(m: InMsg, expected: TelemetryKind, compressions: readonly string[]): Envelope {
  const s = parseTelemetrySubject(m.subject);
  if (!s || s.kind !== expected || !isUuid(s.tenantId) || !isUuid(s.sourceId)) {
    throw new DeadLetter(
      "bad_subject",
      `subject ${m.subject.slice(0, 200)} is not secumon.${expected}.<tenant uuid>.<source uuid>`,
    );
  }
  const tenantId = s.tenantId.toLowerCase();
  const sourceId = s.sourceId.toLowerCase();
  const batchId = header(m, H.batchId);
  if (batchId === "" || batchId.length > 64) {
    throw new DeadLetter("bad_headers", `${H.batchId} must hold 1 to 64 characters, got ${batchId.length}`);
  }
  const hTenant = header(m, H.tenant).toLowerCase();
  const hSource = header(m, H.source).toLowerCase();
  if ((hTenant && hTenant !== tenantId) || (hSource && hSource !== sourceId)) {
    throw new DeadLetter("bad_headers", `${H.tenant}/${H.source} headers disagree with the subject`);
  }
  const compression = header(m, H.compression) || "none";
  if (compression !== "none" && !compressions.includes(compression)) {
    throw new DeadLetter(
      "unknown_compression",
      `compression ${JSON.stringify(compression.slice(0, 20))} is not accepted (ingestion.decompression.algorithms)`,
    );
  }
  const sizeText = header(m, H.uncompressedSize);
  const declaredSize = sizeText === "" && compression === "none" ? m.data.byteLength : Number(sizeText);
  if (!Number.isSafeInteger(declaredSize) || declaredSize < 0) {
    throw new DeadLetter(
      "bad_headers",
      `${H.uncompressedSize} must be a byte count, got ${JSON.stringify(sizeText.slice(0, 20))}`,
    );
  }
  const r = Number(header(m, H.receivedAt));
  return {
    kind: expected,
    tenantId,
    sourceId,
    batchId,
    compression,
    declaredSize,
    receivedAt: Number.isFinite(r) && r > 0 ? r : null,
  };
}

/**
 * Decompresses (bounded) and decodes a payload. The strict wire check (src/protocol/wire.ts) is NOT repeated
 * here: the gateway ran it before publishing, and what the database receives is guarded anyway by the row
 * validation (src/telemetry/validate.ts: types, ranges, time window). What remains is the structural check of
 * protobufjs's decoder — truncated fields, lengths past the end, invalid wire types throw — so bytes from a
 * foreign publisher on the subject end as a `malformed_protobuf` dead letter, never as a crash.
 */
export function decodeEnvelope<K extends TelemetryKind>(
  env: Envelope & { kind: K },
  data: Uint8Array,
  maxBytes: number,
): PayloadFor<K> {
  let raw: Uint8Array;
  try {
    raw = decompressBounded(env.compression, data, env.declaredSize, maxBytes);
  } catch (e) {
    if (isProtocolError(e)) throw new DeadLetter(e.reason, e.message);
    throw e;
  }
  const type = payloadType(env.kind);
  try {
    return type.toObject(type.decode(raw), TO_OBJECT) as PayloadFor<K>;
  } catch (e) {
    throw new DeadLetter(
      "malformed_protobuf",
      `payload is not a valid ${type.name}: ${String(e).slice(0, 120)}`,
    );
  }
}

/** The plain-object shape src/protocol/payload.ts documents (decodePayload's options, numbers for longs). */
const TO_OBJECT = { longs: Number, enums: Number, defaults: true, arrays: true, objects: true } as const;
