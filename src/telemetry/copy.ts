/**
 * COPY … FROM STDIN through postgres.js: field encoders and the streaming write, in two formats.
 *
 * Text format (logs, scans, SNMP): columns separated by TAB, rows by LF, NULL as `\N`; in text values
 * backslash, TAB, LF and CR are escaped. NUL cannot be stored in a PostgreSQL text value at all, so it is
 * dropped.
 *
 * Binary format (the metrics tables, most of the volume): BinaryRows writes each row straight into a byte
 * buffer — no number-to-string conversion here and no string parsing in the server, which is what the text
 * format costs most of its CPU on both sides (bench/ingest.ts profile). A row is a field count (int16), then
 * per field its length (int32, -1 = NULL) and value in network byte order: float8 IEEE 754, int8, timestamptz
 * as microseconds since 2000-01-01 UTC, uuid 16 bytes, text UTF-8, jsonb as version byte 1 + JSON text.
 */
import type { Tx } from "../storage/db.ts";

export const NULL = "\\N";

// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly the characters COPY needs escaped
const NEEDS_ESCAPE = /[\\\t\n\r\u0000]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: see above
const ESCAPES = /[\\\t\n\r\u0000]/g;
const ESCAPED: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\u0000": "" };

/** A text value (null/undefined → NULL). */
export function text(v: string | null | undefined): string {
  if (v === null || v === undefined) return NULL;
  return NEEDS_ESCAPE.test(v) ? v.replace(ESCAPES, (c) => ESCAPED[c] ?? "") : v;
}

/** A double precision value; the caller has already refused non-finite numbers. */
export function float(v: number | null | undefined): string {
  return v === null || v === undefined ? NULL : String(v);
}

/** A bigint value given as a JS number (integral, below 2^63: checked by validation). */
export function int(v: number | null | undefined): string {
  return v === null || v === undefined ? NULL : String(v);
}

export function bool(v: boolean): string {
  return v ? "t" : "f";
}

/** A timestamptz from Unix milliseconds (UTC, ISO 8601). */
export function time(ms: number): string {
  return new Date(ms).toISOString();
}

/** A jsonb value from any JSON-serialisable object. */
export function json(v: unknown): string {
  return text(JSON.stringify(v));
}

/** Unix milliseconds of 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch. */
const PG_EPOCH_MS = 946_684_800_000;
const TWO_32 = 2 ** 32;
const utf8 = new TextEncoder();

/** Rows in COPY binary format, appended field by field into one growing buffer. */
export class BinaryRows {
  private buf = new Uint8Array(64 * 1024);
  private view = new DataView(this.buf.buffer);
  private pos = 0;
  private rowStart = 0;
  /** Complete rows written. */
  rows = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Starts a row of `fields` fields. */
  begin(fields: number): this {
    this.rowStart = this.pos;
    this.room(2);
    this.view.setInt16(this.pos, fields);
    this.pos += 2;
    return this;
  }

  /** Ends the row begun last. */
  end(): void {
    this.rows++;
  }

  /** Drops the row begun last (a value was refused while writing it). */
  abort(): void {
    this.pos = this.rowStart;
  }

  null(): this {
    this.room(4);
    this.view.setInt32(this.pos, -1);
    this.pos += 4;
    return this;
  }

  float8(v: number | null | undefined): this {
    if (v === null || v === undefined) return this.null();
    this.room(12);
    this.view.setInt32(this.pos, 8);
    this.view.setFloat64(this.pos + 4, v);
    this.pos += 12;
    return this;
  }

  private int64(v: number): void {
    const hi = Math.floor(v / TWO_32);
    this.view.setInt32(this.pos, hi);
    this.view.setUint32(this.pos + 4, v - hi * TWO_32);
    this.pos += 8;
  }

  /** A bigint given as a JS number (integral, below 2^63: checked by validation). */
  int8(v: number | null | undefined): this {
    if (v === null || v === undefined) return this.null();
    this.room(12);
    this.view.setInt32(this.pos, 8);
    this.pos += 4;
    this.int64(Math.trunc(v));
    return this;
  }

  /** A timestamptz from Unix milliseconds. */
  time(ms: number): this {
    this.room(12);
    this.view.setInt32(this.pos, 8);
    this.pos += 4;
    this.int64((Math.floor(ms) - PG_EPOCH_MS) * 1000);
    return this;
  }

  /** A uuid from its 16 bytes (uuidBytes). */
  uuid(bytes: Uint8Array): this {
    this.room(20);
    this.view.setInt32(this.pos, 16);
    this.buf.set(bytes, this.pos + 4);
    this.pos += 20;
    return this;
  }

  private utf8(prefix: number, v: string): void {
    const s = v.includes("\u0000") ? v.replaceAll("\u0000", "") : v;
    this.room(5 + s.length * 3);
    const at = this.pos + 4;
    if (prefix >= 0) this.buf[at] = prefix;
    const start = prefix >= 0 ? at + 1 : at;
    const { written } = utf8.encodeInto(s, this.buf.subarray(start));
    const len = written + (prefix >= 0 ? 1 : 0);
    this.view.setInt32(this.pos, len);
    this.pos = at + len;
  }

  /** A text value (null/undefined → NULL); NUL characters are dropped, as in the text format. */
  text(v: string | null | undefined): this {
    if (v === null || v === undefined) return this.null();
    this.utf8(-1, v);
    return this;
  }

  /** A jsonb value from its JSON text. */
  jsonb(jsonText: string): this {
    this.utf8(1, jsonText);
    return this;
  }

  /** The rows written so far (a view: valid until the next write). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

/** The 16 bytes of a UUID in its canonical text form (validated by the caller). */
export function uuidBytes(id: string): Uint8Array {
  return Buffer.from(id.replace(/-/g, ""), "hex");
}

/** COPY binary file header: signature, flags, header extension length. */
const BINARY_HEADER = Uint8Array.from([
  0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
]);
/** COPY binary file trailer: a field count of -1. */
const BINARY_TRAILER = Uint8Array.from([0xff, 0xff]);

/**
 * Streams `lines` (each one row, ending in "\n") into `table (columns)` with COPY inside transaction `tx`.
 * Lines are sent in chunks of about 256 KiB.
 *
 * postgres.js 3.4.9 never settles the writable when the server rejects the COPY after its end (porsager/postgres
 * #1173, fix pending in #1183): the error is swallowed and the transaction would hang. So right after CopyDone
 * is sent, a sentinel `select 1` is queued behind the COPY on the same connection: it fails (25P02, transaction
 * aborted) exactly when the COPY failed, and then this function throws COPY_FAILED.
 */
export async function copyLines(
  tx: Tx,
  table: string,
  columns: readonly string[],
  lines: string[],
): Promise<void> {
  if (lines.length === 0) return;
  await copyStream(tx, table, `copy ${table} (${columns.join(", ")}) from stdin`, function* () {
    let chunk = "";
    for (const line of lines) {
      chunk += line;
      if (chunk.length >= 262_144) {
        yield chunk;
        chunk = "";
      }
    }
    if (chunk) yield chunk;
  });
}

/** Streams rows in COPY binary format (BinaryRows.bytes() of one or more batches) into `table (columns)`. */
export async function copyBinary(
  tx: Tx,
  table: string,
  columns: readonly string[],
  chunks: Uint8Array[],
): Promise<void> {
  if (chunks.length === 0) return;
  await copyStream(
    tx,
    table,
    `copy ${table} (${columns.join(", ")}) from stdin (format binary)`,
    function* () {
      yield BINARY_HEADER;
      yield* chunks;
      yield BINARY_TRAILER;
    },
  );
}

async function copyStream(
  tx: Tx,
  table: string,
  statement: string,
  chunks: () => Iterable<string | Uint8Array>,
): Promise<void> {
  const stream = await tx.unsafe(statement).writable();
  let finalSent = false;
  let finished = false;
  // A lost connection destroys the stream before CopyDone: nothing else would ever settle then.
  const broken = new Promise<never>((_, reject) => {
    stream.once("error", reject);
    stream.once("finish", () => {
      finished = true;
    });
    stream.once("close", () => {
      if (!finalSent && !finished) reject(new Error(`connection closed while copying into ${table}`));
    });
  });
  broken.catch(() => {}); // observed through the races below
  const sentinel = new Promise<void>((resolve, reject) => {
    const w = stream as unknown as { _final: (cb: (e?: Error | null) => void) => void };
    const final = w._final;
    w._final = (cb) => {
      final.call(stream, cb); // writes CopyDone; the connection accepts queries again
      finalSent = true;
      tx`select 1`.then(() => resolve(), reject);
    };
  });
  for (const chunk of chunks()) {
    if (!stream.write(chunk)) {
      await Promise.race([new Promise<void>((r) => stream.once("drain", r)), broken]);
    }
  }
  stream.end();
  try {
    await Promise.race([sentinel, broken]);
  } catch (e) {
    // 25P02: the COPY itself was refused. Anything else (connection lost…) propagates as it is.
    if ((e as { code?: unknown }).code === "25P02") throw new CopyFailed(table, e);
    throw e;
  }
}

/** The server refused a COPY (a value it cannot store); the transaction is aborted. */
export class CopyFailed extends Error {
  override readonly name = "CopyFailed";
  readonly code = "COPY_FAILED";
  constructor(
    readonly table: string,
    cause: unknown,
  ) {
    super(
      `PostgreSQL refused the rows copied into ${table}; the batch holding them is dead-lettered once isolated`,
      { cause },
    );
  }
}
