// Unit tests of the migration runner's file handling and validation (no database: see test/storage/).
import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../test/support/tmp.ts";
import { CollectorError } from "../lib/errors.ts";
import { checksum, lineAndColumn, loadMigrationsFromDir, validateMigrations } from "./migrate.ts";

function dirWith(files: Record<string, string>): string {
  const dir = tempDir("secumon-migrations-");
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

async function rejection(p: Promise<unknown>): Promise<CollectorError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CollectorError);
  return e as CollectorError;
}

describe("loadMigrationsFromDir", () => {
  test("reads NNN_name.sql files sorted by number, ignores other files", async () => {
    const dir = dirWith({
      "002_second.sql": "select 2;",
      "001_first.sql": "select 1;",
      "README.md": "# notes",
    });
    mkdirSync(join(dir, "drafts"));
    expect(await loadMigrationsFromDir(dir)).toEqual([
      { name: "001_first", sql: "select 1;" },
      { name: "002_second", sql: "select 2;" },
    ]);
  });

  test("the project's migrations load and pass validation", async () => {
    const ms = await loadMigrationsFromDir(join(import.meta.dir, "../../migrations"));
    expect(ms[0]?.name).toBe("001_initial");
  });

  test("a .sql file with another name is an error, not silently skipped", async () => {
    const dir = dirWith({ "001_ok.sql": "", "2_short.sql": "", "003-dash.sql": "" });
    const e = await rejection(loadMigrationsFromDir(dir));
    expect(e.code).toBe("MIGRATION_FAILED");
    expect(e.message).toBe(
      `${dir}: 003-dash.sql, 2_short.sql are not named NNN_name.sql (three digits, _, lowercase letters, digits or _): rename or move them`,
    );
  });

  test("two files with the same number are rejected", async () => {
    const e = await rejection(
      loadMigrationsFromDir(dirWith({ "004_b.sql": "", "004_a.sql": "", "003_c.sql": "" })),
    );
    expect(e.code).toBe("MIGRATION_FAILED");
    expect(e.message).toBe(
      "invalid migrations:\n  - number 004 is used by 2 migrations (004_a, 004_b): give each its own number",
    );
  });

  test("a missing directory says which", async () => {
    const e = await rejection(loadMigrationsFromDir("/nonexistent/migrations"));
    expect(e.code).toBe("MIGRATION_FAILED");
    expect(e.message).toStartWith("cannot read the migrations directory /nonexistent/migrations: ");
  });
});

describe("validateMigrations", () => {
  test("bad names and transaction control are all reported together", () => {
    let caught: unknown;
    try {
      validateMigrations([
        { name: "001_initial.sql", sql: "" },
        { name: "002_tx", sql: "create table a (id int);\nCOMMIT;\n" },
        { name: "003_tx", sql: "  begin transaction isolation level serializable;\n" },
      ]);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(CollectorError);
    expect((caught as CollectorError).message).toBe(
      "invalid migrations:\n" +
        "  - 001_initial.sql: a migration is named NNN_name (three digits, then lowercase letters, digits, _)\n" +
        "  - 002_tx.sql line 2: remove `COMMIT;` — every migration already runs in a transaction of its own\n" +
        "  - 003_tx.sql line 1: remove `begin transaction isolation level serializable;` — every migration already runs in a transaction of its own",
    );
  });

  test("PL/pgSQL blocks (BEGIN … END;) are not mistaken for transaction control", () => {
    const sql =
      "DO $$\nBEGIN\n  PERFORM 1;\nEND;\n$$;\nCREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $f$\nBEGIN\n  RETURN 1;\nEND\n$f$;\n";
    expect(validateMigrations([{ name: "001_plpgsql", sql }])).toHaveLength(1);
  });

  test("sorts by name without mutating the input", () => {
    const input = [
      { name: "010_c", sql: "" },
      { name: "002_b", sql: "" },
      { name: "001_a", sql: "" },
    ];
    expect(validateMigrations(input).map((m) => m.name)).toEqual(["001_a", "002_b", "010_c"]);
    expect(input[0]?.name).toBe("010_c");
  });
});

describe("helpers", () => {
  test("checksum ignores line-ending style and a BOM, nothing else", () => {
    const lf = "create table a (id int);\nselect 1;\n";
    expect(checksum(lf)).toBe(checksum("create table a (id int);\r\nselect 1;\r\n"));
    expect(checksum(lf)).toBe(checksum(`\uFEFF${lf}`));
    expect(checksum(lf)).not.toBe(checksum(lf.replace("int", "bigint")));
    expect(checksum(lf)).toMatch(/^[0-9a-f]{64}$/);
  });

  test("lineAndColumn converts PostgreSQL's 1-based character position", () => {
    const text = "select 1;\n-- é comment\nselect * from nope;";
    expect(lineAndColumn(text, 1)).toEqual({ line: 1, column: 1, text: "select 1;" });
    const pos = Array.from(text).indexOf("n", 24) + 1; // "nope", after the multi-byte é
    expect(lineAndColumn(text, pos)).toEqual({ line: 3, column: 15, text: "select * from nope;" });
  });
});
