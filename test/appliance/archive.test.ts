/** The encrypted backup container: round trip, and every way a damaged file or a wrong key is reported. */
import { describe, expect, test } from "bun:test";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ArchiveWriter, HEADER_BYTES, openArchive, readKeyFile } from "../../src/cli/backup-archive.ts";
import { isCollectorError } from "../../src/lib/errors.ts";
import { tempDir } from "../support/tmp.ts";

const KEY = Buffer.from("0123456789abcdef0123456789abcdef");
const CHUNK = 1024;

function write(data: Buffer, key = KEY): string {
  const file = join(tempDir(), "a.bak");
  const fd = openSync(file, "w");
  const w = new ArchiveWriter(fd, key, { chunkSize: CHUNK });
  // uneven pieces, so chunk boundaries fall inside writes
  for (let i = 0; i < data.length; i += 700) w.write(data.subarray(i, i + 700));
  w.finish();
  closeSync(fd);
  return file;
}

function readAll(file: string, key = KEY): Buffer {
  return Buffer.concat([...openArchive(file, key)]);
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(isCollectorError(e)).toBe(true);
    return (e as Error).message;
  }
  throw new Error("expected an error");
}

const payload = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) % 251));

describe("backup archive", () => {
  test("round trip across several chunks, and an empty payload", () => {
    expect(readAll(write(payload)).equals(payload)).toBe(true);
    expect(readAll(write(Buffer.alloc(0))).length).toBe(0);
    const exact = payload.subarray(0, CHUNK * 3); // a last chunk that is exactly full
    expect(readAll(write(exact)).equals(exact)).toBe(true);
  });

  test("the payload is not readable in the file", () => {
    const text = Buffer.from("tenant-slug-that-must-not-appear-in-clear ".repeat(20));
    const raw = readFileSync(write(text));
    expect(raw.includes(Buffer.from("tenant-slug"))).toBe(false);
  });

  test("a wrong key is told apart from damage", () => {
    const file = write(payload);
    const msg = errorOf(() => readAll(file, Buffer.from("another-key-another-key-another!!")));
    expect(msg).toContain("does not match");
  });

  test("truncation at every chunk boundary and inside a chunk is detected", () => {
    const raw = readFileSync(write(payload));
    const sealed = CHUNK + 16;
    const cuts = [
      HEADER_BYTES + sealed,
      HEADER_BYTES + 2 * sealed,
      HEADER_BYTES + 3 * sealed,
      raw.length - 1,
      HEADER_BYTES + 5,
      20,
    ];
    for (const cut of cuts) {
      const f = join(tempDir(), "cut.bak");
      writeFileSync(f, raw.subarray(0, cut));
      expect(errorOf(() => readAll(f))).toContain("is damaged");
    }
  });

  test("a flipped byte, reordered chunks and appended data are detected", () => {
    const raw = readFileSync(write(payload));
    const flip = Buffer.from(raw);
    flip[HEADER_BYTES + 1500] = flip[HEADER_BYTES + 1500]! ^ 1;
    const sealed = CHUNK + 16;
    const a = raw.subarray(HEADER_BYTES, HEADER_BYTES + sealed);
    const b = raw.subarray(HEADER_BYTES + sealed, HEADER_BYTES + 2 * sealed);
    const swapped = Buffer.concat([
      raw.subarray(0, HEADER_BYTES),
      b,
      a,
      raw.subarray(HEADER_BYTES + 2 * sealed),
    ]);
    const appended = Buffer.concat([raw, Buffer.from("extra")]);
    for (const bad of [flip, swapped, appended]) {
      const f = join(tempDir(), "bad.bak");
      writeFileSync(f, bad);
      expect(errorOf(() => readAll(f))).toMatch(/is damaged|fails authentication/);
    }
  });

  test("not a backup, unknown version, missing file", () => {
    const f = join(tempDir(), "junk");
    writeFileSync(f, "hello, this is not a backup at all");
    expect(errorOf(() => readAll(f))).toContain("is not a SecuMon backup");
    const raw = Buffer.from(readFileSync(write(payload)));
    raw[8] = 9;
    writeFileSync(f, raw);
    expect(errorOf(() => readAll(f))).toContain("format version 9");
    expect(errorOf(() => readAll(join(tempDir(), "absent.bak")))).toContain("does not exist");
  });

  test("key files: trailing newline ignored, too short or missing refused with how to make one", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "k1"), `${KEY.toString()}\n`);
    expect(readKeyFile(join(dir, "k1")).equals(KEY)).toBe(true);
    writeFileSync(join(dir, "short"), "abc\n");
    expect(errorOf(() => readKeyFile(join(dir, "short")))).toContain("at least 16");
    expect(errorOf(() => readKeyFile(join(dir, "none")))).toContain("head -c 32 /dev/urandom");
  });
});
