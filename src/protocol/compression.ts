/**
 * Bounded decompression of telemetry batches (docs/telemetry-path.md, "Compression formats").
 * Nothing here ever allocates more than `min(declaredSize, maxBytes)` bytes of output:
 * - lz4: block format with a 4-byte little-endian size prefix (lz4-napi `compressSync`). The prefix must equal the
 *   declared size and be within `maxBytes` before lz4 runs (lz4 allocates exactly the prefix), and the output
 *   must fill it exactly.
 * - zstd: a standard frame, decompressed with node:zlib's `maxOutputLength` set to the declared size, which
 *   stops decompression as soon as the output would exceed it (a 2 GiB bomb costs ~1 MiB and a few ms); the
 *   output must then be exactly the declared size (a truncated frame yields less and is refused).
 */
import zlib from "node:zlib";
import { compressSync as lz4Compress, uncompressSync as lz4Uncompress } from "lz4-napi";
import { ProtocolError } from "./errors.ts";

export const COMPRESSIONS = ["none", "lz4", "zstd"] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export function isCompression(s: string): s is Compression {
  return (COMPRESSIONS as readonly string[]).includes(s);
}

export function decompressBounded(
  compression: Compression | string,
  data: Uint8Array,
  declaredSize: number,
  maxBytes: number,
): Uint8Array {
  if (!Number.isSafeInteger(declaredSize) || declaredSize < 0) {
    throw new ProtocolError(
      "size_mismatch",
      `declared uncompressed size ${declaredSize} is not a valid size`,
    );
  }
  if (declaredSize > maxBytes) {
    throw new ProtocolError(
      "too_large",
      `declared uncompressed size ${declaredSize} bytes exceeds the limit of ${maxBytes} bytes; send smaller batches`,
    );
  }
  switch (compression) {
    case "none":
      if (data.byteLength !== declaredSize) {
        throw new ProtocolError(
          "size_mismatch",
          `payload is ${data.byteLength} bytes but declares ${declaredSize} uncompressed bytes`,
        );
      }
      return data;
    case "lz4":
      return lz4Bounded(data, declaredSize);
    case "zstd":
      return zstdBounded(data, declaredSize);
    default:
      throw new ProtocolError(
        "unknown_compression",
        `unknown compression ${JSON.stringify(String(compression)).slice(0, 40)}; use none, lz4 or zstd`,
      );
  }
}

function lz4Bounded(data: Uint8Array, declaredSize: number): Uint8Array {
  if (data.byteLength < 4) {
    throw new ProtocolError("corrupt_compressed", "lz4 payload is shorter than its 4-byte size prefix");
  }
  const prefix = (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0;
  if (prefix !== declaredSize) {
    throw new ProtocolError(
      "size_mismatch",
      `lz4 size prefix says ${prefix} bytes but the batch declares ${declaredSize} uncompressed bytes`,
    );
  }
  let out: Uint8Array;
  try {
    out = lz4Uncompress(data);
  } catch (err) {
    throw new ProtocolError("corrupt_compressed", `lz4 payload does not decompress: ${shortReason(err)}`);
  }
  if (out.byteLength !== declaredSize) {
    throw new ProtocolError(
      "size_mismatch",
      `lz4 payload decompresses to ${out.byteLength} bytes but declares ${declaredSize}`,
    );
  }
  return out;
}

function zstdBounded(data: Uint8Array, declaredSize: number): Uint8Array {
  let out: Uint8Array;
  try {
    // maxOutputLength must be >= 1; an empty declared payload still has to decompress to nothing.
    out = zlib.zstdDecompressSync(data, { maxOutputLength: Math.max(1, declaredSize) });
  } catch (err) {
    if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new ProtocolError(
        "size_mismatch",
        `zstd payload inflates beyond its declared ${declaredSize} bytes (refused before allocating more)`,
      );
    }
    throw new ProtocolError("corrupt_compressed", `zstd payload does not decompress: ${shortReason(err)}`);
  }
  if (out.byteLength !== declaredSize) {
    throw new ProtocolError(
      "size_mismatch",
      `zstd payload decompresses to ${out.byteLength} bytes but declares ${declaredSize} (truncated or wrong size)`,
    );
  }
  return out;
}

/** Compresses a payload the way agents do (used by the simulator and tests). */
export function compress(compression: Compression, data: Uint8Array): Uint8Array {
  switch (compression) {
    case "none":
      return data;
    case "lz4":
      return lz4Compress(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    case "zstd":
      return zlib.zstdCompressSync(data);
  }
}

function shortReason(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 120);
}
