/**
 * Telemetry payload codecs (proto/secumon/v1/telemetry.proto), one message type per kind.
 *
 * Decoded objects are plain JS objects with the .proto field names (snake_case, like the database columns):
 * - non-optional scalars are always present (proto3 default when absent: 0, "", false);
 * - `optional` fields are absent (`undefined`) when the sender did not measure them → store NULL;
 * - repeated fields are arrays (possibly empty), maps are plain objects;
 * - 64-bit integers are JS numbers by default (exact up to 2^53; counters beyond lose precision), or decimal
 *   strings with `{ longs: "string" }`;
 * - enums (LogLevel) are numbers; `logLevelName()` gives "debug" … "emergency".
 */
import type protobuf from "protobufjs";
import type { TelemetryKind } from "../bus/telemetry.ts";
import { ProtocolError } from "./errors.ts";
import { messageType } from "./schema.ts";
import type { PayloadFor } from "./types.ts";
import { validateWire } from "./wire.ts";

export const PAYLOAD_MESSAGE: Record<TelemetryKind, string> = {
  metrics: "MetricsPayload",
  logs: "LogsPayload",
  inventory: "InventoryPayload",
  scans: "ScanResultsPayload",
  snmp: "SnmpPayload",
};

const types = new Map<TelemetryKind, protobuf.Type>();

export function payloadType(kind: TelemetryKind): protobuf.Type {
  let t = types.get(kind);
  if (!t) {
    const name = PAYLOAD_MESSAGE[kind];
    if (!name) throw new ProtocolError("unknown_kind", `unknown telemetry kind ${JSON.stringify(kind)}`);
    t = messageType(name);
    types.set(kind, t);
  }
  return t;
}

/** Checks that `bytes` is a well-formed payload of `kind` (wire types, lengths, UTF-8) without decoding it. */
export function validatePayload(kind: TelemetryKind, bytes: Uint8Array): void {
  validateWire(payloadType(kind), bytes);
}

export interface DecodeOptions {
  /** "number" (default) or "string" for int64/uint64 fields. */
  longs?: "number" | "string";
}

/** Validates then decodes an uncompressed payload; throws ProtocolError("malformed_protobuf") on bad bytes. */
export function decodePayload<K extends TelemetryKind>(
  kind: K,
  bytes: Uint8Array,
  opts: DecodeOptions = {},
): PayloadFor<K> {
  const type = payloadType(kind);
  validateWire(type, bytes);
  let msg: protobuf.Message;
  try {
    msg = type.decode(bytes);
  } catch (err) {
    throw new ProtocolError(
      "malformed_protobuf",
      `payload is not a valid ${type.name}: ${String(err).slice(0, 120)}`,
    );
  }
  return type.toObject(msg, {
    longs: opts.longs === "string" ? String : Number,
    enums: Number,
    defaults: true,
    arrays: true,
    objects: true,
  }) as PayloadFor<K>;
}

/** Encodes a plain object (snake_case field names) into payload bytes; throws on fields of the wrong type. */
export function encodePayload<K extends TelemetryKind>(kind: K, obj: PayloadFor<K>): Uint8Array {
  const type = payloadType(kind);
  const err = type.verify(obj as Record<string, unknown>);
  if (err) throw new ProtocolError("malformed_protobuf", `cannot encode ${type.name}: ${err}`);
  return type.encode(type.fromObject(obj as Record<string, unknown>)).finish();
}

const LOG_LEVELS = [
  "unspecified",
  "debug",
  "info",
  "notice",
  "warning",
  "error",
  "critical",
  "alert",
  "emergency",
];

export function logLevelName(level: number): string {
  return LOG_LEVELS[level] ?? "unspecified";
}
