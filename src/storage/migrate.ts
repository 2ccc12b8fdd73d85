/**
 * Schema migrations: plain SQL files `NNN_name.sql`, applied in order, each in its own transaction, recorded
 * with a SHA-256 checksum in `schema_migrations`. Forward only.
 *
 * The runner takes `{ name, sql }` pairs and does not care where they come from: `loadMigrationsFromDir` in
 * development and tests, the generated manifest (src/assets/embedded.gen.ts) in the compiled binary. `name` is
 * the file name without `.sql` ("001_initial").
 *
 * Concurrency: the whole run holds a session-level advisory lock on one reserved connection, so collectors
 * starting together queue up; the next one in line re-reads `schema_migrations` once it has the lock and finds
 * the work done. Advisory locks are per database, so collectors on different databases never wait on each
 * other. A crashed runner's lock goes with its connection.
 */
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import postgres from "postgres";
import { CollectorError, errorMessage } from "../lib/errors.ts";
import type { Logger } from "../observability/logger.ts";
import { mapDatabaseError } from "./db.ts";

export interface Migration {
  /** File name without `.sql`, e.g. "001_initial". */
  name: string;
  sql: string;
}

export interface MigrationResult {
  /** Names applied by this run, in order. */
  applied: string[];
  /** How many of the given migrations were already applied. */
  skipped: number;
}

/** pg_advisory_lock key guarding migrations: the ASCII bytes of "secumig" read as one big-endian integer. */
export const MIGRATION_LOCK_KEY = "32481100167997799";

const NAME = /^(\d{3})_[a-z0-9_]+$/;
const FILE = /^(\d{3})_[a-z0-9_]+\.sql$/;
/**
 * A line that is a transaction-control statement (`BEGIN;`, `COMMIT;`, `START TRANSACTION …;`, …). PL/pgSQL's
 * block `BEGIN` takes no semicolon and its `END;` is not matched; a procedure body's `COMMIT;` would be (rare
 * in a migration; write it inside a line that does not start with it).
 */
const TRANSACTION_CONTROL =
  /^[ \t]*(BEGIN(?:[ \t]+(?:WORK|TRANSACTION)[^;\n]*)?|START[ \t]+TRANSACTION[^;\n]*|COMMIT[^;\n]*|ROLLBACK(?:[ \t]+(?:WORK|TRANSACTION))?|ABORT[^;\n]*|END[ \t]+(?:WORK|TRANSACTION)[^;\n]*)[ \t]*;/im;

const TABLE_DDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
  name        text PRIMARY KEY,
  checksum    text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now(),
  duration_ms integer NOT NULL
)`;

/**
 * Applies the migrations not yet recorded, in name order. Before applying anything, every given migration
 * already recorded must still have its recorded checksum (MIGRATION_CHECKSUM otherwise). A migration that fails
 * is rolled back and stops the run (MIGRATION_FAILED, naming the file, the PostgreSQL error and its line);
 * the ones before it stay applied.
 */
export async function runMigrations(
  sql: postgres.Sql,
  migrations: Migration[],
  log: Logger,
): Promise<MigrationResult> {
  const ordered = validateMigrations(migrations);
  let conn: postgres.ReservedSql;
  try {
    conn = await sql.reserve();
  } catch (e) {
    throw mapDatabaseError(e, sql);
  }
  let locked = false;
  try {
    const [tried] = await conn<
      { ok: boolean }[]
    >`select pg_try_advisory_lock(${MIGRATION_LOCK_KEY}::bigint) as ok`;
    if (!tried?.ok) {
      log.info("another collector is applying migrations to this database; waiting for it to finish");
      await conn`select pg_advisory_lock(${MIGRATION_LOCK_KEY}::bigint)`;
    }
    locked = true;
    await conn.unsafe(TABLE_DDL);
    const rows = await conn<
      { name: string; checksum: string }[]
    >`select name, checksum from schema_migrations`;
    const recorded = new Map(rows.map((r) => [r.name, r.checksum]));

    checkChecksums(ordered, recorded);
    const known = new Set(ordered.map((m) => m.name));
    const unknown = [...recorded.keys()].filter((n) => !known.has(n)).sort();
    if (unknown.length > 0) {
      log.warn(
        { unknown },
        `the database has migrations this collector does not know (${unknown.join(", ")}): it was probably ` +
          "migrated by a newer version; running an older collector against it may fail",
      );
    }

    const pending = ordered.filter((m) => !recorded.has(m.name));
    const latest = [...recorded.keys()].sort().at(-1);
    const skipped = ordered.length - pending.length;
    const applied: string[] = [];
    for (const [i, m] of pending.entries()) {
      if (latest !== undefined && m.name < latest) {
        log.warn({ migration: m.name }, `applying ${m.name} out of order: ${latest} is already applied`);
      }
      log.info({ migration: m.name }, `applying ${m.name} (${i + 1}/${pending.length})`);
      const ms = await applyOne(conn, m, applied, sql);
      log.info({ migration: m.name, ms }, `applied ${m.name} in ${ms} ms`);
      applied.push(m.name);
    }
    log.info(
      { applied: applied.length, skipped },
      applied.length === 0
        ? `database schema is up to date (${skipped} migrations)`
        : `database schema migrated: ${applied.length} applied, ${skipped} already applied`,
    );
    return { applied, skipped };
  } catch (e) {
    throw mapDatabaseError(e, sql);
  } finally {
    if (locked) {
      // a failed unlock means the connection is gone, and the lock with it
      await conn`select pg_advisory_unlock(${MIGRATION_LOCK_KEY}::bigint)`.catch(() => {});
    }
    conn.release();
  }
}

async function applyOne(
  conn: postgres.ReservedSql,
  m: Migration,
  before: string[],
  sql: postgres.Sql,
): Promise<number> {
  const t0 = performance.now();
  // BEGIN/COMMIT by hand: postgres.js offers begin() on the pool, not on a reserved connection, and the lock
  // lives on this connection.
  try {
    await conn.unsafe("BEGIN");
    await conn.unsafe(m.sql).simple();
    const ms = Math.round(performance.now() - t0);
    await conn`insert into schema_migrations (name, checksum, duration_ms) values (${m.name}, ${checksum(m.sql)}, ${ms})`;
    await conn.unsafe("COMMIT");
    return ms;
  } catch (e) {
    await conn.unsafe("ROLLBACK").catch(() => {});
    const mapped = mapDatabaseError(e, sql);
    if (mapped !== e) throw mapped;
    throw migrationFailed(m, e, before);
  }
}

/** SHA-256 (hex) of the migration text with its line endings normalised to LF and any BOM removed, so a
 * checkout that converts line endings does not read as an edit. */
export function checksum(text: string): string {
  return createHash("sha256")
    .update(text.replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n"))
    .digest("hex");
}

function checkChecksums(ordered: Migration[], recorded: Map<string, string>): void {
  const changed = ordered.flatMap((m) => {
    const was = recorded.get(m.name);
    const now = checksum(m.sql);
    return was === undefined || was === now ? [] : [{ name: m.name, recorded: was, now }];
  });
  if (changed.length === 0) return;
  const list = changed.map(
    (c) => `${c.name}.sql (recorded sha256 ${c.recorded.slice(0, 12)}…, file now ${c.now.slice(0, 12)}…)`,
  );
  throw new CollectorError(
    "MIGRATION_CHECKSUM",
    `${changed.length === 1 ? "an applied migration was" : "applied migrations were"} edited: ${list.join(", ")}. ` +
      "A migration must not change once applied: restore the original file (e.g. `git checkout` the version that " +
      "was applied) and put the change in a new migration with the next number instead.",
    { details: { changed } },
  );
}

function migrationFailed(m: Migration, e: unknown, before: string[]): CollectorError {
  const kept = before.length > 0 ? ` (this run applied ${before.join(", ")})` : "";
  const message =
    `migration ${m.name}.sql failed and was rolled back: ${describeError(e, m)}\n` +
    `Nothing of ${m.name}.sql was applied; the migrations before it stay applied${kept}. Fix ${m.name}.sql ` +
    "(it is not recorded as applied, so it may still be edited) and start the collector again, or run " +
    "`secumon-collector migrate`. If it came with a collector upgrade, keep running the previous version and " +
    "report this message.";
  return new CollectorError("MIGRATION_FAILED", message, { cause: e });
}

function describeError(e: unknown, m: Migration): string {
  if (!(e instanceof postgres.PostgresError)) return errorMessage(e);
  const parts = [`${e.message} (SQLSTATE ${e.code})`];
  const pos = Number(e.position);
  if (Number.isInteger(pos) && pos > 0) {
    const at = lineAndColumn(m.sql, pos);
    parts.push(`  at ${m.name}.sql line ${at.line}, column ${at.column}: ${at.text.trim()}`);
  }
  if (e.detail) parts.push(`  detail: ${e.detail}`);
  if (e.hint) parts.push(`  hint: ${e.hint}`);
  if (e.where) parts.push(`  where: ${e.where}`);
  return parts.join("\n");
}

/** Line and column (1-based) of PostgreSQL's error position, which counts characters (code points) from 1. */
export function lineAndColumn(
  text: string,
  position: number,
): { line: number; column: number; text: string } {
  const chars = Array.from(text);
  const before = chars.slice(0, position - 1).join("");
  const lines = before.split("\n");
  const line = lines.length;
  const column = Array.from(lines.at(-1) ?? "").length + 1;
  return { line, column, text: text.split("\n")[line - 1] ?? "" };
}

/**
 * Checks names (`NNN_name`, lowercase), duplicate numbers and transaction control inside files, reporting every
 * problem at once; returns the migrations sorted by name.
 */
export function validateMigrations(migrations: Migration[]): Migration[] {
  const problems: string[] = [];
  const byNumber = new Map<string, string[]>();
  for (const m of migrations) {
    const match = NAME.exec(m.name);
    if (!match) {
      problems.push(
        `${m.name}: a migration is named NNN_name (three digits, then lowercase letters, digits, _)`,
      );
      continue;
    }
    const n = match[1]!;
    byNumber.set(n, [...(byNumber.get(n) ?? []), m.name]);
    const tc = TRANSACTION_CONTROL.exec(m.sql);
    if (tc) {
      const line = m.sql.slice(0, tc.index).split("\n").length;
      problems.push(
        `${m.name}.sql line ${line}: remove \`${tc[1]};\` — every migration already runs in a transaction of its own`,
      );
    }
  }
  for (const [n, names] of byNumber) {
    if (names.length > 1) {
      problems.push(
        `number ${n} is used by ${names.length} migrations (${names.sort().join(", ")}): give each its own number`,
      );
    }
  }
  if (problems.length > 0) {
    throw new CollectorError("MIGRATION_FAILED", `invalid migrations:\n  - ${problems.join("\n  - ")}`, {
      details: { problems },
    });
  }
  return [...migrations].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Reads `NNN_name.sql` files from a directory (other files, like a README, are ignored; a `.sql` file with
 * another name is an error rather than silently skipped). Sorted; duplicate numbers rejected.
 */
export async function loadMigrationsFromDir(dir: string): Promise<Migration[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (e) {
    throw new CollectorError(
      "MIGRATION_FAILED",
      `cannot read the migrations directory ${dir}: ${errorMessage(e)}`,
      {
        cause: e,
      },
    );
  }
  const misnamed = entries.filter((f) => f.toLowerCase().endsWith(".sql") && !FILE.test(f)).sort();
  if (misnamed.length > 0) {
    throw new CollectorError(
      "MIGRATION_FAILED",
      `${dir}: ${misnamed.join(", ")} ${misnamed.length === 1 ? "is" : "are"} not named NNN_name.sql ` +
        "(three digits, _, lowercase letters, digits or _): rename or move them",
    );
  }
  const files = entries.filter((f) => FILE.test(f));
  const migrations = await Promise.all(
    files.map(async (f) => ({ name: f.slice(0, -".sql".length), sql: await readFile(join(dir, f), "utf8") })),
  );
  return validateMigrations(migrations);
}
