/** Hand-crafted hostile inputs for tests (no huge allocation needed to build them). */

/**
 * A zstd frame of RLE blocks that inflates to `blocks` × 128 KiB of zeros while being only 4 bytes per block:
 * 16,384 blocks (64 KiB) → 2 GiB. No content size in the header, so the decoder learns the size only by
 * decompressing. (RFC 8878: magic, frame header descriptor 0x00, window descriptor 2^17, RLE blocks.)
 */
export function zstdRleBomb(blocks: number): Uint8Array {
  const out = new Uint8Array(4 + 1 + 1 + blocks * 4);
  out.set([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38], 0);
  for (let i = 0; i < blocks; i++) {
    const last = i === blocks - 1 ? 1 : 0;
    const header = (131072 << 3) | (1 << 1) | last; // block size 128 KiB, type RLE
    const o = 6 + i * 4;
    out[o] = header & 0xff;
    out[o + 1] = (header >>> 8) & 0xff;
    out[o + 2] = (header >>> 16) & 0xff;
    out[o + 3] = 0; // the repeated byte
  }
  return out;
}

/** An lz4 block whose 4-byte size prefix is replaced by `prefix` (the real content is unchanged). */
export function withLz4Prefix(lz4: Uint8Array, prefix: number): Uint8Array {
  const out = Uint8Array.from(lz4);
  new DataView(out.buffer).setUint32(0, prefix >>> 0, true);
  return out;
}
