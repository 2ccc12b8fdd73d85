/**
 * LZ4 block decompression (the format of lz4_flex `compress_prepend_size` / lz4-napi `compressSync` once the
 * 4-byte size prefix is removed) into a caller-given output of exactly the declared size.
 *
 * Why not lz4-napi's `uncompressSync` on the gateway's hot path: it decompresses into a Rust Vec, then copies it
 * into a fresh JS Buffer — two allocations and a copy of every batch (45 KB for 500 metrics samples), which on
 * Bun shows up as page faults and allocator madvise calls, a sizable share of the gateway's CPU at 1,500
 * batches/s. Decoding in place needs neither, and lets the gateway reuse one scratch buffer for the check.
 *
 * Strict and bounded: every read is checked against the input and every write against the output (the output is
 * never grown), a match offset must point inside what was already written, and the block must end exactly at
 * the end of the input with the output exactly full. Anything else returns the refusal (no exceptions on the
 * hot path); compression.test.ts compares the verdicts with lz4-napi on valid, truncated and mutated blocks.
 */

export interface Lz4Refusal {
  /** size_mismatch: the block inflates to more or less than the declared size; corrupt: not a valid block */
  reason: "size_mismatch" | "corrupt";
  message: string;
}

const corrupt = (message: string): Lz4Refusal => ({ reason: "corrupt", message });
const size = (message: string): Lz4Refusal => ({ reason: "size_mismatch", message });

/** Decodes the block `src[start..]` into all of `out`; returns null when done, else why the block is refused. */
export function lz4DecodeBlock(src: Uint8Array, start: number, out: Uint8Array): Lz4Refusal | null {
  const srcEnd = src.byteLength;
  const outEnd = out.byteLength;
  let s = start;
  let o = 0;
  if (s >= srcEnd) return corrupt("the lz4 block is empty (an empty payload is one zero token)");
  for (;;) {
    const token = src[s++]!;
    // literals
    let lit = token >>> 4;
    if (lit === 15) {
      for (;;) {
        if (s >= srcEnd) return corrupt("the lz4 block ends inside a literal length");
        const b = src[s++]!;
        lit += b;
        if (b !== 255) break;
      }
    }
    if (lit > srcEnd - s) return corrupt("an lz4 literal run goes past the end of the block");
    if (lit > outEnd - o) return size("an lz4 literal run goes past the declared size");
    if (lit < 16) {
      for (let i = 0; i < lit; i++) out[o + i] = src[s + i]!;
    } else {
      out.set(src.subarray(s, s + lit), o);
    }
    s += lit;
    o += lit;
    if (s === srcEnd) break; // the last sequence has literals only
    // match
    if (srcEnd - s < 2) return corrupt("the lz4 block ends inside a match offset");
    const offset = src[s]! | (src[s + 1]! << 8);
    s += 2;
    if (offset === 0 || offset > o) return corrupt("an lz4 match points before the start of the output");
    let len = (token & 15) + 4;
    if ((token & 15) === 15) {
      for (;;) {
        if (s >= srcEnd) return corrupt("the lz4 block ends inside a match length");
        const b = src[s++]!;
        len += b;
        if (b !== 255) break;
      }
    }
    if (len > outEnd - o) return size("an lz4 match goes past the declared size");
    const from = o - offset;
    if (offset >= len && len >= 32) {
      out.copyWithin(o, from, from + len);
    } else {
      // overlapping (a repeated pattern) or short: byte by byte, which repeats the pattern as lz4 means
      for (let i = 0; i < len; i++) out[o + i] = out[from + i]!;
    }
    o += len;
  }
  return o === outEnd ? null : size(`the lz4 block decompresses to ${o} bytes, not the declared ${outEnd}`);
}
