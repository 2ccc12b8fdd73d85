import { describe, expect, test } from "bun:test";
import zlib from "node:zlib";
import { uncompressSync } from "lz4-napi";
import { compress, DecompressScratch, decompressBounded } from "./compression.ts";
import { isProtocolError, type ProtocolError } from "./errors.ts";
import { lz4DecodeBlock } from "./lz4.ts";
import { withLz4Prefix, zstdRleBomb } from "./testing.ts";

const MiB = 1 << 20;
const sample = new TextEncoder().encode("cpu_usage=12.5 mem_used=123456 ".repeat(200));

function refusal(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (err) {
    if (isProtocolError(err)) return err;
    throw err;
  }
  throw new Error("expected a ProtocolError, got none");
}

describe("decompressBounded", () => {
  for (const c of ["none", "lz4", "zstd"] as const) {
    test(`${c}: round trip`, () => {
      const z = compress(c, sample);
      const out = decompressBounded(c, z, sample.byteLength, 16 * MiB);
      expect(Buffer.from(out).equals(Buffer.from(sample))).toBe(true);
    });

    test(`${c}: declared size larger than the limit is refused before anything else`, () => {
      const z = compress(c, sample);
      expect(refusal(() => decompressBounded(c, z, sample.byteLength, 100)).reason).toBe("too_large");
    });

    test(`${c}: declared size smaller or larger than the real one is refused`, () => {
      const z = compress(c, sample);
      expect(refusal(() => decompressBounded(c, z, sample.byteLength - 1, 16 * MiB)).reason).toBe(
        "size_mismatch",
      );
      expect(refusal(() => decompressBounded(c, z, sample.byteLength + 1, 16 * MiB)).reason).toBe(
        "size_mismatch",
      );
    });

    test(`${c}: empty payload`, () => {
      const z = compress(c, new Uint8Array(0));
      expect(decompressBounded(c, z, 0, MiB).byteLength).toBe(0);
    });
  }

  test("negative, fractional or absurd declared sizes are refused", () => {
    for (const n of [-1, 1.5, Number.NaN, 2 ** 60]) {
      expect(isProtocolError(refusal(() => decompressBounded("none", sample, n, MiB)))).toBe(true);
    }
  });

  test("unknown compression is refused", () => {
    const e = refusal(() => decompressBounded("brotli", sample, sample.byteLength, MiB));
    expect(e.reason).toBe("unknown_compression");
    expect(e.message).toContain("use none, lz4 or zstd");
  });

  test("lz4 bomb: a prefix claiming 4 GiB is refused without calling lz4", () => {
    const z = withLz4Prefix(compress("lz4", sample), 0xffffffff);
    // declared honestly as 4 GiB: over the limit
    expect(refusal(() => decompressBounded("lz4", z, 0xffffffff, 16 * MiB)).reason).toBe("too_large");
    // declared small but the prefix lies: mismatch, refused before allocation
    expect(refusal(() => decompressBounded("lz4", z, 1000, 16 * MiB)).reason).toBe("size_mismatch");
  });

  test("lz4 bomb: content that inflates beyond an honest-looking prefix is refused", () => {
    const zeros = compress("lz4", new Uint8Array(8 * MiB)); // ~32 KiB compressed
    const lying = withLz4Prefix(zeros, 1024);
    const e = refusal(() => decompressBounded("lz4", lying, 1024, 16 * MiB));
    expect(["corrupt_compressed", "size_mismatch"]).toContain(e.reason);
  });

  test("lz4: truncated or garbage input is refused", () => {
    const z = compress("lz4", sample);
    expect(
      isProtocolError(
        refusal(() => decompressBounded("lz4", z.subarray(0, z.length - 5), sample.byteLength, MiB)),
      ),
    ).toBe(true);
    expect(refusal(() => decompressBounded("lz4", z.subarray(0, 3), sample.byteLength, MiB)).reason).toBe(
      "corrupt_compressed",
    );
    const garbage = withLz4Prefix(crypto.getRandomValues(new Uint8Array(200)), 5000);
    expect(isProtocolError(refusal(() => decompressBounded("lz4", garbage, 5000, MiB)))).toBe(true);
  });

  test("zstd bomb: 64 KiB inflating to 2 GiB is refused at the declared size", () => {
    // the crafted frame is genuine: two blocks inflate to 256 KiB
    expect(decompressBounded("zstd", zstdRleBomb(2), 262144, MiB).byteLength).toBe(262144);
    const bomb = zstdRleBomb(16384); // 2 GiB of zeros
    expect(bomb.byteLength).toBeLessThan(70_000);
    const before = process.memoryUsage().rss;
    expect(refusal(() => decompressBounded("zstd", bomb, 4096, 16 * MiB)).reason).toBe("size_mismatch");
    expect(refusal(() => decompressBounded("zstd", bomb, 16 * MiB, 16 * MiB)).reason).toBe("size_mismatch");
    // bounded: nowhere near 2 GiB was allocated
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * MiB);
  });

  test("zstd: a frame that declares its content size larger than the limit is refused", () => {
    const z = zlib.zstdCompressSync(new Uint8Array(32 * MiB));
    expect(refusal(() => decompressBounded("zstd", z, MiB, MiB)).reason).toBe("size_mismatch");
  });

  test("zstd: truncated frame or garbage is refused", () => {
    const z = compress("zstd", sample);
    expect(
      isProtocolError(
        refusal(() => decompressBounded("zstd", z.subarray(0, z.length - 4), sample.byteLength, MiB)),
      ),
    ).toBe(true);
    const garbage = crypto.getRandomValues(new Uint8Array(300));
    expect(refusal(() => decompressBounded("zstd", garbage, 300, MiB)).reason).toBe("corrupt_compressed");
  });
});

describe("lz4 block decoder (lz4.ts) against lz4-napi", () => {
  // deterministic pseudo-random bytes (xorshift32), so a failure reproduces
  let seed = 0x9e3779b9;
  const rnd = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
  const text = (s: string) => new TextEncoder().encode(s);

  /** "ok:<hash>" or "refused", the same way for both decoders (the prefix is the declared size). */
  function verdicts(blob: Uint8Array): [string, string] {
    const prefix = (blob[0]! | (blob[1]! << 8) | (blob[2]! << 16) | (blob[3]! << 24)) >>> 0;
    let napi: string;
    try {
      const out = uncompressSync(Buffer.from(blob));
      napi = out.byteLength === prefix ? `ok:${Bun.hash(out)}` : "refused";
    } catch {
      napi = "refused";
    }
    const out = new Uint8Array(prefix);
    const ours = lz4DecodeBlock(blob, 4, out) === null ? `ok:${Bun.hash(out)}` : "refused";
    return [napi, ours];
  }

  test("same verdict and bytes on valid, truncated, mutated and random blocks", () => {
    const inputs = [
      new Uint8Array(0),
      new Uint8Array(1),
      new Uint8Array(70_000), // long matches, overlapping (offset 1)
      bytes(5000), // literals only
      text("abcabcabc".repeat(1000)), // overlapping matches (offset 3)
      sample,
    ];
    for (let n = 1; n < 300; n += 13) inputs.push(text(`${"x".repeat(n)}${"yz".repeat(n)}${String(n)}`));
    let compared = 0;
    const same = (blob: Uint8Array) => {
      const [napi, ours] = verdicts(blob);
      expect({ len: blob.byteLength, ours }).toEqual({ len: blob.byteLength, ours: napi });
      compared++;
    };
    for (const input of inputs) {
      const z = compress("lz4", input);
      expect(verdicts(z)[1]).toBe(`ok:${Bun.hash(input)}`);
      for (let i = 4; i < z.byteLength; i += Math.max(1, Math.floor(z.byteLength / 40)))
        same(z.subarray(0, i));
      for (let k = 0; k < 100; k++) {
        const m = Uint8Array.from(z);
        if (m.byteLength > 4) m[4 + Math.floor(rnd() * (m.byteLength - 4))] = Math.floor(rnd() * 256);
        same(m);
      }
    }
    for (let k = 0; k < 1000; k++) {
      const m = bytes(4 + Math.floor(rnd() * 64));
      m[1]! &= 3; // declared sizes up to 1 KiB
      m[2] = 0;
      m[3] = 0;
      same(m);
    }
    expect(compared).toBeGreaterThan(2000);
  });

  test("never writes past the declared size: a block inflating further is refused", () => {
    const z = compress("lz4", new Uint8Array(4096));
    const backing = new Uint8Array(116).fill(0xee);
    const out = backing.subarray(0, 100); // the 16 bytes after it must stay untouched
    expect(lz4DecodeBlock(z, 4, out)?.reason).toBe("size_mismatch");
    expect(backing.subarray(100).every((b) => b === 0xee)).toBe(true);
  });

  test("a match pointing before the start of the output is refused", () => {
    // token: 1 literal, match length 4; literal "a"; offset 2 (only 1 byte written so far)
    const block = Uint8Array.of(5, 0, 0, 0, 0x10, 0x61, 2, 0);
    expect(lz4DecodeBlock(block, 4, new Uint8Array(5))?.reason).toBe("corrupt");
    expect(refusal(() => decompressBounded("lz4", block, 5, MiB)).reason).toBe("corrupt_compressed");
  });

  test("with a scratch buffer: same bytes, and the buffer is reused between calls", () => {
    const scratch = new DecompressScratch();
    const z = compress("lz4", sample);
    const a = decompressBounded("lz4", z, sample.byteLength, MiB, scratch);
    expect(Buffer.from(a).equals(Buffer.from(sample))).toBe(true);
    const b = decompressBounded("lz4", z, sample.byteLength, MiB, scratch);
    expect(b.buffer).toBe(a.buffer);
    // larger than what the scratch keeps: a fresh buffer of its own
    const big = new Uint8Array(2 * MiB).fill(7);
    const c = decompressBounded("lz4", compress("lz4", big), big.byteLength, 4 * MiB, scratch);
    expect(c.buffer).not.toBe(a.buffer);
    expect(c.every((x) => x === 7)).toBe(true);
  });
});
