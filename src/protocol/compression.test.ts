import { describe, expect, test } from "bun:test";
import zlib from "node:zlib";
import { compress, decompressBounded } from "./compression.ts";
import { isProtocolError, type ProtocolError } from "./errors.ts";
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
