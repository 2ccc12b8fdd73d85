/**
 * COPY … FROM STDIN (text format) through postgres.js: field encoders and the streaming write.
 *
 * Text format: columns separated by TAB, rows by LF, NULL as `\N`; in text values backslash, TAB, LF and CR
 * are escaped. NUL cannot be stored in a PostgreSQL text value at all, so it is dropped.
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
  const stream = await tx.unsafe(`copy ${table} (${columns.join(", ")}) from stdin`).writable();
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
  let chunk = "";
  for (const line of lines) {
    chunk += line;
    if (chunk.length >= 262_144) {
      if (!stream.write(chunk)) {
        await Promise.race([new Promise<void>((r) => stream.once("drain", r)), broken]);
      }
      chunk = "";
    }
  }
  stream.end(chunk);
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
