/**
 * The migration runner against a real PostgreSQL (the shared throwaway cluster, test/support/pg.ts): fresh apply,
 * re-run, edited migration, failing migration, two runners at once.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import pino from "pino";
import { CollectorError } from "../../src/lib/errors.ts";
import { type Logger, silentLogger } from "../../src/observability/logger.ts";
import { connect, type Sql } from "../../src/storage/db.ts";
import { checksum, loadMigrationsFromDir, type Migration, runMigrations } from "../../src/storage/migrate.ts";
import { emptyDatabase } from "../support/pg.ts";

const pools: Sql[] = [];
afterAll(async () => {
  await Promise.all(pools.splice(0).map((p) => p.end({ timeout: 2 })));
});

async function freshDatabase(): Promise<{ sql: Sql; url: string }> {
  const url = await emptyDatabase();
  return { sql: pool(url), url };
}

function pool(url: string): Sql {
  const sql = connect(url, { max: 4, log: silentLogger() });
  pools.push(sql);
  return sql;
}

function capture(): { log: Logger; messages: string[] } {
  const messages: string[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void messages.push(JSON.parse(line).msg) });
  return { log, messages };
}

async function failure(p: Promise<unknown>): Promise<CollectorError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CollectorError);
  return e as CollectorError;
}

async function recorded(
  sql: Sql,
): Promise<{ name: string; checksum: string; applied_at: Date; duration_ms: number }[]> {
  return sql`select name, checksum, applied_at, duration_ms from schema_migrations order by name`;
}

async function tableExists(sql: Sql, name: string): Promise<boolean> {
  const [r] = await sql<{ t: string | null }[]>`select to_regclass(${name})::text as t`;
  return r?.t != null;
}

const project = await loadMigrationsFromDir(join(import.meta.dir, "../../migrations"));
const extra: Migration = {
  name: "900_probe_notes",
  sql: "CREATE TABLE probe_notes (id int PRIMARY KEY, note text);\n",
};

describe("runMigrations", () => {
  test("fresh database: applies every migration in order, records name, checksum, time and duration", async () => {
    const { sql } = await freshDatabase();
    const { log, messages } = capture();
    const all = [extra, ...project]; // out of order on purpose: the runner sorts
    const res = await runMigrations(sql, all, log);

    const names = [...project.map((m) => m.name), extra.name];
    expect(res).toEqual({ applied: names, skipped: 0 });
    const rows = await recorded(sql);
    expect(rows.map((r) => r.name)).toEqual(names);
    for (const r of rows) {
      const m = all.find((x) => x.name === r.name)!;
      expect(r.checksum).toBe(checksum(m.sql));
      expect(r.applied_at).toBeInstanceOf(Date);
      expect(r.duration_ms).toBeGreaterThanOrEqual(0);
    }
    expect(await tableExists(sql, "agents")).toBe(true);
    expect(await tableExists(sql, "probe_notes")).toBe(true);
    const n = names.length;
    expect(messages).toContain(`applying 001_initial (1/${n})`);
    expect(messages).toContain(`applying 900_probe_notes (${n}/${n})`);
    expect(messages.at(-1)).toBe(`database schema migrated: ${n} applied, 0 already applied`);
  });

  test("re-run is a no-op; a new migration is applied alone and numbered among the pending ones", async () => {
    const { sql } = await freshDatabase();
    await runMigrations(sql, project, silentLogger());
    const before = await recorded(sql);

    const { log, messages } = capture();
    expect(await runMigrations(sql, project, log)).toEqual({ applied: [], skipped: project.length });
    expect(await recorded(sql)).toEqual(before);
    expect(messages).toEqual([`database schema is up to date (${project.length} migrations)`]);

    const next = capture();
    expect(await runMigrations(sql, [...project, extra], next.log)).toEqual({
      applied: [extra.name],
      skipped: project.length,
    });
    expect(next.messages).toContain("applying 900_probe_notes (1/1)");
  });

  test("an applied migration whose text changed is refused before anything is applied", async () => {
    const { sql } = await freshDatabase();
    const original: Migration = { name: "001_accounts", sql: "CREATE TABLE accounts (id int);\n" };
    await runMigrations(sql, [original], silentLogger());

    const edited: Migration = { name: "001_accounts", sql: "CREATE TABLE accounts (id bigint);\n" };
    const e = await failure(runMigrations(sql, [edited, extra], silentLogger()));
    expect(e.code).toBe("MIGRATION_CHECKSUM");
    const was = checksum(original.sql).slice(0, 12);
    const now = checksum(edited.sql).slice(0, 12);
    expect(e.message).toBe(
      `an applied migration was edited: 001_accounts.sql (recorded sha256 ${was}…, file now ${now}…). ` +
        "A migration must not change once applied: restore the original file (e.g. `git checkout` the version " +
        "that was applied) and put the change in a new migration with the next number instead.",
    );
    expect((await recorded(sql)).map((r) => r.name)).toEqual(["001_accounts"]);
    expect(await tableExists(sql, "probe_notes")).toBe(false);

    // the same text with CRLF line endings is not an edit
    const crlf: Migration = { name: original.name, sql: original.sql.replace(/\n/g, "\r\n") };
    expect(await runMigrations(sql, [crlf], silentLogger())).toEqual({ applied: [], skipped: 1 });
  });

  test("a failing migration rolls back entirely, is not recorded, and the message points at the line", async () => {
    const { sql } = await freshDatabase();
    const ok: Migration = { name: "001_ok", sql: "CREATE TABLE ok_table (id int);\n" };
    const bad: Migration = {
      name: "002_bad",
      sql: "CREATE TABLE half_done (id int);\nINSERT INTO half_done VALUES (1);\nSELECT * FROM no_such_table;\n",
    };
    const later: Migration = { name: "003_later", sql: "CREATE TABLE later_table (id int);\n" };

    const e = await failure(runMigrations(sql, [ok, bad, later], silentLogger()));
    expect(e.code).toBe("MIGRATION_FAILED");
    expect(e.message).toBe(
      'migration 002_bad.sql failed and was rolled back: relation "no_such_table" does not exist (SQLSTATE 42P01)\n' +
        "  at 002_bad.sql line 3, column 15: SELECT * FROM no_such_table;\n" +
        "Nothing of 002_bad.sql was applied; the migrations before it stay applied (this run applied 001_ok). " +
        "Fix 002_bad.sql (it is not recorded as applied, so it may still be edited) and start the collector " +
        "again, or run `secumon-collector migrate`. If it came with a collector upgrade, keep running the " +
        "previous version and report this message.",
    );
    expect((await recorded(sql)).map((r) => r.name)).toEqual(["001_ok"]);
    expect(await tableExists(sql, "ok_table")).toBe(true);
    expect(await tableExists(sql, "half_done")).toBe(false); // created by the failing file, rolled back
    expect(await tableExists(sql, "later_table")).toBe(false); // never reached

    // fixed: the run resumes where it stopped
    const fixed: Migration = { name: bad.name, sql: bad.sql.replace("no_such_table", "half_done") };
    expect(await runMigrations(sql, [ok, fixed, later], silentLogger())).toEqual({
      applied: ["002_bad", "003_later"],
      skipped: 1,
    });
  });

  test("a syntax error anywhere in the file: nothing runs, line and column given", async () => {
    const { sql } = await freshDatabase();
    const bad: Migration = {
      name: "001_typo",
      sql: "CREATE TABLE fine (id int);\n\nCREATE TABLEX t (id int);\n",
    };
    const e = await failure(runMigrations(sql, [bad], silentLogger()));
    expect(e.message).toStartWith(
      'migration 001_typo.sql failed and was rolled back: syntax error at or near "TABLEX" (SQLSTATE 42601)\n' +
        "  at 001_typo.sql line 3, column 8: CREATE TABLEX t (id int);\n" +
        "Nothing of 001_typo.sql was applied; the migrations before it stay applied. Fix 001_typo.sql",
    );
    expect(await tableExists(sql, "fine")).toBe(false);
    expect(await recorded(sql)).toEqual([]);
  });

  test("an error raised inside a DO block carries PostgreSQL's context", async () => {
    const { sql } = await freshDatabase();
    const bad: Migration = {
      name: "001_raise",
      sql: "DO $$\nBEGIN\n  RAISE EXCEPTION 'no way' USING HINT = 'try harder';\nEND\n$$;\n",
    };
    const e = await failure(runMigrations(sql, [bad], silentLogger()));
    expect(e.message).toStartWith(
      "migration 001_raise.sql failed and was rolled back: no way (SQLSTATE P0001)\n" +
        "  hint: try harder\n" +
        "  where: PL/pgSQL function inline_code_block line 3 at RAISE\n",
    );
  });

  test("two collectors migrating the same database at once: both succeed, each migration applied once", async () => {
    const { url } = await freshDatabase();
    const slow: Migration = {
      name: "950_slow",
      sql: "SELECT pg_sleep(0.5);\nCREATE TABLE slow_done (id int);\n",
    };
    const set = [...project, slow];
    const a = capture();
    const b = capture();
    const [ra, rb] = await Promise.all([
      runMigrations(pool(url), set, a.log),
      runMigrations(pool(url), set, b.log),
    ]);

    const names = set.map((m) => m.name).sort();
    expect([...ra.applied, ...rb.applied].sort()).toEqual(names);
    expect(ra.skipped + rb.skipped).toBe(names.length);
    const waited = [...a.messages, ...b.messages].filter((m) =>
      m.startsWith("another collector is applying"),
    );
    expect(waited).toHaveLength(1); // the race really happened: one of them queued behind the other
    const sql = pool(url);
    expect((await recorded(sql)).map((r) => r.name)).toEqual(names);
  });

  test("invalid input is refused before connecting", async () => {
    const sql = connect("postgres://nobody@127.0.0.1:1/none", {
      log: silentLogger(),
      connectTimeoutSeconds: 1,
    });
    pools.push(sql);
    const e = await failure(runMigrations(sql, [{ name: "1_x", sql: "" }], silentLogger()));
    expect(e.code).toBe("MIGRATION_FAILED");
  });
});
