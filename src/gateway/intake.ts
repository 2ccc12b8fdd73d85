/**
 * One telemetry batch from an authenticated principal: checked (id, compression, sizes, bounded decompression,
 * strict protobuf of the kind's payload type), then published to JetStream exactly as docs/telemetry-path.md
 * says, and acknowledged only once JetStream stored it. A full stream (discard new) → RESOURCE_EXHAUSTED so the
 * sender keeps its batch; JetStream unreachable → UNAVAILABLE.
 */
import { JetStreamApiError, type JetStreamClient } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { H, type TelemetryKind, telemetryPublishSubject } from "../bus/telemetry.ts";
import type { Principal } from "../pki/identity.ts";
import { type Compression, decompressBounded } from "../protocol/compression.ts";
import { isProtocolError } from "../protocol/errors.ts";
import { validatePayload } from "../protocol/payload.ts";
import { exhausted, type GatewayError, invalidArgument, unavailable } from "./status.ts";

export interface WireBatch {
  batch_id: string;
  compression: number;
  uncompressed_size: number;
  payload: Uint8Array;
  created_unix_ms?: number;
}

const COMPRESSION_BY_NUMBER: Record<number, Compression> = { 0: "none", 1: "lz4", 2: "zstd" };
const BATCH_ID = /^[A-Za-z0-9_-]{1,64}$/;

export interface IntakeOptions {
  js: JetStreamClient;
  maxUncompressedBytes: number;
  publishTimeoutMs?: number;
  /** TELEMETRY shards (src/bus/telemetry.ts; default 1) */
  shards?: number;
  now?: () => number;
}

export interface Accepted {
  duplicate: boolean;
  seq: number;
}

export class Intake {
  constructor(private readonly o: IntakeOptions) {}

  /** Validates then publishes; throws GatewayError (INVALID_ARGUMENT / RESOURCE_EXHAUSTED / UNAVAILABLE). */
  async accept(p: Principal, kind: TelemetryKind, b: WireBatch): Promise<Accepted> {
    const compression = this.check(kind, b);
    const h = headers();
    h.set("Nats-Msg-Id", `${p.id}:${b.batch_id}`);
    h.set(H.batchId, b.batch_id);
    h.set(H.tenant, p.tenantId);
    h.set(H.source, p.id);
    h.set(H.sourceType, p.kind);
    h.set(H.compression, compression);
    h.set(H.uncompressedSize, String(b.uncompressed_size));
    h.set(H.receivedAt, String((this.o.now ?? Date.now)()));
    try {
      // the subject's tenant and source come from the certificate, never from the batch
      const subject = telemetryPublishSubject(kind, p.tenantId, p.id, this.o.shards ?? 1);
      const ack = await this.o.js.publish(subject, b.payload, {
        headers: h,
        timeout: this.o.publishTimeoutMs ?? 10_000,
      });
      return { duplicate: ack.duplicate, seq: ack.seq };
    } catch (err) {
      throw publishError(err);
    }
  }

  /** The checks alone (no publish): returns the compression name. */
  check(kind: TelemetryKind, b: WireBatch): Compression {
    if (typeof b.batch_id !== "string" || !BATCH_ID.test(b.batch_id)) {
      throw invalidArgument(
        "batch_id must be 1 to 64 characters of A-Z a-z 0-9 _ - (a UUID or ULID)",
        "bad_batch_id",
      );
    }
    const compression = COMPRESSION_BY_NUMBER[b.compression];
    if (!compression) {
      throw invalidArgument(
        `unknown compression ${b.compression}; use COMPRESSION_NONE, COMPRESSION_LZ4 or COMPRESSION_ZSTD`,
        "unknown_compression",
      );
    }
    let raw: Uint8Array;
    try {
      raw = decompressBounded(compression, b.payload, b.uncompressed_size, this.o.maxUncompressedBytes);
      validatePayload(kind, raw);
    } catch (err) {
      if (isProtocolError(err))
        throw invalidArgument(`batch ${b.batch_id} refused: ${err.message}`, err.reason);
      throw err;
    }
    return compression;
  }
}

/**
 * JetStream API error codes (nats-server errors.json) that mean "no room": the stream is at a limit with
 * discard new (10077 JSStreamStoreFailedF carries "maximum bytes/messages exceeded"), or the server/account
 * storage is exhausted. Matched on the numeric code, never on free text alone.
 */
export const JS_STORE_FAILED = 10077;
const JS_NO_ROOM = new Set([
  10047, // JSStorageResourcesExceededErr — insufficient storage resources available
  10028, // JSMemoryResourcesExceededErr
  10023, // JSInsufficientResourcesErr
  10002, // JSAccountResourcesExceededErr
]);
const JS_MESSAGE_TOO_LARGE = 10054; // JSStreamMessageExceedsMaximumErr
/** The limit texts a 10077 carries when a discard-new stream is full (other 10077s are store I/O failures). */
const LIMIT_TEXT = /^maximum (bytes|messages|messages per subject) exceeded$/i;

export function publishError(err: unknown): GatewayError {
  const code = err instanceof JetStreamApiError ? err.code : 0;
  const description = err instanceof JetStreamApiError ? (err.apiError().description ?? "") : "";
  if (JS_NO_ROOM.has(code) || (code === JS_STORE_FAILED && LIMIT_TEXT.test(description.trim()))) {
    return exhausted(
      "the collector's telemetry buffer is full (storage is behind); keep the batch and resend it later",
      "stream_full",
    );
  }
  if (code === JS_MESSAGE_TOO_LARGE) {
    return invalidArgument(
      "this batch is larger than the collector's stream accepts; split it into smaller batches",
      "batch_too_large",
    );
  }
  const msg = String((err as Error)?.message ?? err);
  return unavailable(
    `the collector cannot store batches right now (${msg.slice(0, 80)}); resend later`,
    "publish_failed",
  );
}
