/**
 * What a backup holds, as records inside the encrypted container (backup-archive.ts):
 *   'M' manifest: u32 length + JSON (Manifest)            — always first
 *   'F' file:     u16 name length + name (relative to data_dir, '/'-separated) + u32 mode + u64 size + bytes
 *   'D' database: segments of u32 length + bytes (a pg_dump custom-format stream), ended by a 0 length
 *   'E' end                                                 — always last; nothing may follow
 */
import { CollectorError } from "../lib/errors.ts";
import type { ArchiveWriter } from "./backup-archive.ts";

export interface Manifest {
  format: 1;
  created_at: string;
  collector_version: string;
  hostname: string;
  database: {
    /** Migrations applied in the backed-up database, in order. */
    migrations: string[];
    server_version: string;
    timescaledb: boolean;
  };
  files: { path: string; size: number; mode: number }[];
}

export interface BackupFile {
  path: string;
  mode: number;
  data: Buffer;
}

const MAX_FILE = 256 * 1024 * 1024;
const MAX_MANIFEST = 16 * 1024 * 1024;

export class RecordWriter {
  constructor(private readonly out: ArchiveWriter) {}

  manifest(m: Manifest): void {
    const json = Buffer.from(JSON.stringify(m));
    this.out.write(Buffer.from("M"));
    this.out.write(u32(json.length));
    this.out.write(json);
  }

  file(f: BackupFile): void {
    const name = Buffer.from(f.path);
    const head = Buffer.alloc(1 + 2 + name.length + 4 + 8);
    head.write("F", 0);
    head.writeUInt16BE(name.length, 1);
    name.copy(head, 3);
    head.writeUInt32BE(f.mode & 0o7777, 3 + name.length);
    head.writeBigUInt64BE(BigInt(f.data.length), 7 + name.length);
    this.out.write(head);
    this.out.write(f.data);
  }

  /** Writes a database stream; returns its size in bytes. */
  async database(stream: AsyncIterable<Uint8Array>): Promise<number> {
    this.out.write(Buffer.from("D"));
    let total = 0;
    for await (const seg of stream) {
      if (seg.byteLength === 0) continue;
      this.out.write(u32(seg.byteLength));
      this.out.write(seg);
      total += seg.byteLength;
    }
    this.out.write(u32(0));
    return total;
  }

  end(): void {
    this.out.write(Buffer.from("E"));
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** Pulls exact byte counts out of a stream of plaintext chunks. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(
    private readonly chunks: Iterator<Buffer>,
    private readonly path: string,
  ) {}

  private fill(n: number): void {
    const parts = [this.buf];
    let have = this.buf.length;
    while (have < n) {
      const next = this.chunks.next();
      if (next.done) throw malformed(this.path, "the content ends before its end record");
      parts.push(next.value);
      have += next.value.length;
    }
    this.buf = Buffer.concat(parts);
  }

  take(n: number): Buffer {
    if (this.buf.length < n) this.fill(n);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** True when nothing at all is left. */
  atEnd(): boolean {
    while (this.buf.length === 0) {
      const next = this.chunks.next();
      if (next.done) return true;
      this.buf = next.value;
    }
    return false;
  }
}

function malformed(path: string, detail: string): CollectorError {
  return new CollectorError(
    "BAD_REQUEST",
    `backup file ${path} is not a valid backup (${detail}). Nothing was restored; use another copy of the backup.`,
  );
}

export interface RecordHandlers {
  manifest(m: Manifest): void | Promise<void>;
  file(f: BackupFile): void | Promise<void>;
  database(segment: Buffer): void | Promise<void>;
}

/** Reads every record, in order, handing each to `h`; checks the framing (manifest first, end last). */
export async function readRecords(chunks: Iterator<Buffer>, path: string, h: RecordHandlers): Promise<void> {
  const r = new ByteReader(chunks, path);
  let first = true;
  for (;;) {
    const type = String.fromCharCode(r.take(1)[0]!);
    if (first && type !== "M") throw malformed(path, "it does not start with a manifest");
    first = false;
    switch (type) {
      case "M": {
        const len = r.take(4).readUInt32BE();
        if (len > MAX_MANIFEST) throw malformed(path, "oversized manifest");
        let m: Manifest;
        try {
          m = JSON.parse(r.take(len).toString("utf8")) as Manifest;
        } catch {
          throw malformed(path, "unreadable manifest");
        }
        if (m?.format !== 1 || !Array.isArray(m.files) || !Array.isArray(m.database?.migrations)) {
          throw malformed(path, "unknown manifest layout");
        }
        await h.manifest(m);
        break;
      }
      case "F": {
        const nameLen = r.take(2).readUInt16BE();
        const name = r.take(nameLen).toString("utf8");
        const mode = r.take(4).readUInt32BE();
        const size = Number(r.take(8).readBigUInt64BE());
        if (!safeRelative(name)) throw malformed(path, `unsafe file name ${JSON.stringify(name)}`);
        if (size > MAX_FILE) throw malformed(path, `file ${name} is implausibly large`);
        await h.file({ path: name, mode, data: Buffer.from(r.take(size)) });
        break;
      }
      case "D":
        for (;;) {
          const len = r.take(4).readUInt32BE();
          if (len === 0) break;
          await h.database(Buffer.from(r.take(len)));
        }
        break;
      case "E":
        if (!r.atEnd()) throw malformed(path, "data after the end record");
        return;
      default:
        throw malformed(path, `unknown record type 0x${type.charCodeAt(0).toString(16)}`);
    }
  }
}

/** A relative path that stays inside the data directory: no absolute path, no `..`, no empty segment. */
export function safeRelative(p: string): boolean {
  if (p.length === 0 || p.startsWith("/") || p.includes("\0") || p.includes("\\")) return false;
  return p.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}
