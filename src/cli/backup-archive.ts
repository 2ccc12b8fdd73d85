/**
 * The encrypted backup container written by `secumon-collector backup` and read by `restore`.
 *
 * Layout (all integers big-endian):
 *   header, 57 bytes, in clear but authenticated (it is the additional data of every chunk):
 *     0  magic "SECUMBAK"            8  format version (1)       9  KDF id (1 = scrypt)
 *     10 scrypt log2(N), r, p, 0     14 chunk size (u32)         18 salt (16 bytes)
 *     34 nonce prefix (7 bytes)      41 key check (16 bytes): HMAC-SHA256(check key, header[0..41])
 *   then chunks: AES-256-GCM(plaintext chunk) + 16-byte tag, every chunk `chunk size` bytes of plaintext but the
 *   last (which may be shorter, even empty). Nonce = prefix(7) | chunk number (u32) | 1 if last else 0 — the
 *   STREAM construction: reordered, dropped or appended chunks and a truncated file all fail authentication.
 *
 * Keys: scrypt(key-file bytes, salt) → 64 bytes = encryption key (32) | key-check key (32). The key check lets
 * a wrong key file be told apart from a damaged backup without revealing anything about the key.
 *
 * The plaintext is a sequence of records (see backup-records.ts); this module only seals and opens bytes.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  randomBytes,
  scryptSync,
  timingSafeEqual,
} from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync, writeSync } from "node:fs";
import { CollectorError, UsageError } from "../lib/errors.ts";

export const MAGIC = Buffer.from("SECUMBAK");
export const FORMAT_VERSION = 1;
const KDF_SCRYPT = 1;
export const HEADER_BYTES = 57;
const TAG = 16;
const DEFAULT_CHUNK = 1024 * 1024;
const MAX_CHUNK = 16 * 1024 * 1024;
/** scrypt cost: N = 2^15, r = 8, p = 1 (≈ 32 MiB, ~0.1 s): a key file is random, this only adds margin. */
const SCRYPT = { log2N: 15, r: 8, p: 1 };
const MIN_KEY_BYTES = 16;

const KEY_HINT =
  "create one with `head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE` and keep a copy off the machine";

/** Reads an operator key file: its bytes, trailing whitespace removed, at least 16 of them. */
export function readKeyFile(path: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new UsageError(
      code === "ENOENT"
        ? `key file ${path} does not exist; ${KEY_HINT}`
        : `cannot read key file ${path} (${code ?? String(e)}); check its permissions`,
    );
  }
  let end = raw.length;
  while (
    end > 0 &&
    (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d || raw[end - 1] === 0x20 || raw[end - 1] === 0x09)
  )
    end--;
  const key = raw.subarray(0, end);
  if (key.length < MIN_KEY_BYTES) {
    throw new UsageError(
      `key file ${path} holds ${key.length} bytes; a backup key needs at least ${MIN_KEY_BYTES} random bytes: ${KEY_HINT}`,
    );
  }
  return key;
}

/** True when the key file can be read by users other than its owner (worth a warning). */
export function keyFileIsShared(path: string): boolean {
  return (statSync(path).mode & 0o077) !== 0;
}

interface Keys {
  enc: Buffer;
  check: Buffer;
}

function deriveKeys(secret: Buffer, salt: Buffer, p: { log2N: number; r: number; p: number }): Keys {
  const N = 2 ** p.log2N;
  const out = scryptSync(secret, salt, 64, { N, r: p.r, p: p.p, maxmem: 256 * N * p.r + 16 * 1024 * 1024 });
  return { enc: out.subarray(0, 32), check: out.subarray(32) };
}

function nonce(prefix: Buffer, index: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0);
  n.writeUInt32BE(index, 7);
  n[11] = last ? 1 : 0;
  return n;
}

/** Writes a backup: push plaintext with write(), then finish(); the file descriptor stays the caller's. */
export class ArchiveWriter {
  private readonly keys: Keys;
  private readonly header: Buffer;
  private readonly prefix: Buffer;
  private readonly chunkSize: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private index = 0;
  private finished = false;
  /** Bytes written to the file so far. */
  written = 0;

  constructor(
    private readonly fd: number,
    secret: Buffer,
    opts: { chunkSize?: number } = {},
  ) {
    this.chunkSize = opts.chunkSize ?? DEFAULT_CHUNK;
    const salt = randomBytes(16);
    this.prefix = randomBytes(7);
    this.keys = deriveKeys(secret, salt, SCRYPT);
    const h = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(h, 0);
    h[8] = FORMAT_VERSION;
    h[9] = KDF_SCRYPT;
    h[10] = SCRYPT.log2N;
    h[11] = SCRYPT.r;
    h[12] = SCRYPT.p;
    h.writeUInt32BE(this.chunkSize, 14);
    salt.copy(h, 18);
    this.prefix.copy(h, 34);
    createHmac("sha256", this.keys.check).update(h.subarray(0, 41)).digest().copy(h, 41, 0, 16);
    this.header = h;
    this.out(h);
  }

  write(data: Uint8Array): void {
    if (this.finished) throw new Error("archive already finished");
    let buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    while (buf.length > 0) {
      const room = this.chunkSize - this.pendingBytes;
      const take = buf.subarray(0, room);
      this.pending.push(Buffer.from(take));
      this.pendingBytes += take.length;
      buf = buf.subarray(take.length);
      // a full chunk is sealed only once more data follows, so that the last one can carry the "last" flag
      if (this.pendingBytes === this.chunkSize && buf.length > 0) this.seal(false);
    }
  }

  /** Seals the last chunk (possibly empty). */
  finish(): void {
    if (this.finished) return;
    this.seal(true);
    this.finished = true;
  }

  private seal(last: boolean): void {
    const plain = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    const c = createCipheriv("aes-256-gcm", this.keys.enc, nonce(this.prefix, this.index++, last));
    c.setAAD(this.header);
    this.out(Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]));
  }

  private out(b: Buffer): void {
    let off = 0;
    while (off < b.length) off += writeSync(this.fd, b, off, b.length - off);
    this.written += b.length;
  }
}

function damaged(path: string, detail: string): CollectorError {
  return new CollectorError(
    "BAD_REQUEST",
    `backup file ${path} is damaged (${detail}): it was truncated or altered after it was written. ` +
      "Nothing was restored; use another copy of the backup.",
  );
}

/**
 * Opens a backup and yields its plaintext chunk by chunk, each authenticated before it is handed out. Throws a
 * clear error for a file that is not a backup, a newer format, a wrong key, or damage (naming the offset).
 */
export function* openArchive(path: string, secret: Buffer): Generator<Buffer> {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new UsageError(
      code === "ENOENT" ? `backup file ${path} does not exist` : `cannot read backup file ${path} (${code})`,
    );
  }
  try {
    const size = fstatSync(fd).size;
    const readAt = (pos: number, len: number): Buffer => {
      const b = Buffer.alloc(len);
      let got = 0;
      while (got < len) {
        const n = readSync(fd, b, got, len - got, pos + got);
        if (n === 0) break;
        got += n;
      }
      return b.subarray(0, got);
    };
    const header = readAt(0, HEADER_BYTES);
    if (header.length < MAGIC.length || !header.subarray(0, MAGIC.length).equals(MAGIC)) {
      throw new UsageError(`${path} is not a SecuMon backup (no SECUMBAK header); check the file name`);
    }
    if (header.length < HEADER_BYTES) throw damaged(path, "the header is cut short");
    if (header[8] !== FORMAT_VERSION) {
      throw new UsageError(
        `backup ${path} uses format version ${header[8]}, which this collector does not know (it reads version ${FORMAT_VERSION}); restore it with a newer secumon-collector`,
      );
    }
    if (
      header[9] !== KDF_SCRYPT ||
      header[10]! < 10 ||
      header[10]! > 22 ||
      header[11]! < 1 ||
      header[11]! > 32 ||
      header[12]! < 1 ||
      header[12]! > 16
    ) {
      throw damaged(path, "unknown key-derivation parameters in the header");
    }
    const chunkSize = header.readUInt32BE(14);
    if (chunkSize < 1024 || chunkSize > MAX_CHUNK) throw damaged(path, `implausible chunk size ${chunkSize}`);
    const keys = deriveKeys(secret, header.subarray(18, 34), {
      log2N: header[10]!,
      r: header[11]!,
      p: header[12]!,
    });
    const expect = createHmac("sha256", keys.check).update(header.subarray(0, 41)).digest().subarray(0, 16);
    if (!timingSafeEqual(expect, header.subarray(41, 57))) {
      throw new CollectorError(
        "UNAUTHENTICATED",
        `the key file does not match backup ${path}: it was made with another key. Use the key file given to \`backup --key-file\` when it was made.`,
      );
    }
    const prefix = header.subarray(34, 41);
    let pos = HEADER_BYTES;
    for (let index = 0; ; index++) {
      const remaining = size - pos;
      const last = remaining <= chunkSize + TAG;
      if (remaining < TAG) throw damaged(path, `it ends inside chunk ${index} at byte ${size}`);
      const len = last ? remaining : chunkSize + TAG;
      const sealed = readAt(pos, len);
      if (sealed.length !== len) throw damaged(path, `short read at byte ${pos}`);
      const d = createDecipheriv("aes-256-gcm", keys.enc, nonce(prefix, index, last));
      d.setAAD(header);
      d.setAuthTag(sealed.subarray(len - TAG));
      let plain: Buffer;
      try {
        plain = Buffer.concat([d.update(sealed.subarray(0, len - TAG)), d.final()]);
      } catch {
        throw damaged(path, `chunk ${index} at byte ${pos} fails authentication`);
      }
      pos += len;
      yield plain;
      if (last) return;
    }
  } finally {
    closeSync(fd);
  }
}
