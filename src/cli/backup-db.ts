/**
 * The database side of backup and restore: which database (configured URL, or the embedded cluster under the
 * data directory — started for the duration when no collector is running), pg_dump / pg_restore as child
 * processes, and the checks around them.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/schema.ts";
import { CollectorError, errorMessage } from "../lib/errors.ts";
import type { Logger } from "../observability/logger.ts";
import { connect, mapDatabaseError, type Sql } from "../storage/db.ts";
import { findPgBinDir, prepareEmbeddedPg } from "../supervisor/postgres.ts";

export interface Target {
  url: string;
  sql: Sql;
  /** How the database was reached, for messages. */
  describe: string;
  close(): Promise<void>;
}

/** Pid of a live collector holding the data directory, or null. */
export function runningCollector(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, "collector.pid"), "utf8").trim());
    if (!pid || pid === process.pid) return null;
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

/** Connects to the collector's database; starts the embedded cluster when needed and nobody else runs it. */
export async function openTarget(config: Config, dataDir: string, log: Logger): Promise<Target> {
  if (config.database.url) {
    const sql = connect(config.database.url, { max: 2, log });
    return { url: config.database.url, sql, describe: "database.url", close: () => sql.end({ timeout: 5 }) };
  }
  const port = config.database.embedded.port;
  const pg = await prepareEmbeddedPg(
    { dataDir, port, binDir: config.database.embedded.bin_dir || undefined },
    { initialMs: 500, maxMs: 2000, resetAfterMs: 60_000 },
    log,
  );
  const live = runningCollector(dataDir);
  // a running collector owns the cluster: use its socket; otherwise run the cluster for the duration
  if (live === null) await pg.child.start();
  const sql = connect(pg.url, { max: 2, log });
  return {
    url: pg.url,
    sql,
    describe:
      live === null
        ? `the embedded cluster under ${dataDir}`
        : `the embedded cluster of collector pid ${live}`,
    close: async () => {
      await sql.end({ timeout: 5 });
      if (live === null) await pg.child.stop();
    },
  };
}

export interface DatabaseInfo {
  migrations: string[];
  server_version: string;
  timescaledb: boolean;
}

export async function databaseInfo(sql: Sql): Promise<DatabaseInfo> {
  try {
    const [v] = await sql<{ v: string; ts: boolean; mig: boolean }[]>`
      select current_setting('server_version') as v,
             exists(select from pg_extension where extname = 'timescaledb') as ts,
             to_regclass('public.schema_migrations') is not null as mig`;
    const migrations = v!.mig
      ? (await sql<{ name: string }[]>`select name from schema_migrations order by name`).map((r) => r.name)
      : [];
    return { migrations, server_version: v!.v, timescaledb: v!.ts };
  } catch (e) {
    throw mapDatabaseError(e, sql);
  }
}

/** Schemas holding the collector's objects (everything but PostgreSQL's own). */
async function userSchemas(sql: Sql): Promise<string[]> {
  const rows = await sql<{ nspname: string }[]>`
    select nspname from pg_namespace
    where nspname not like 'pg\\_%' and nspname <> 'information_schema'
      and not exists (select from pg_depend d where d.objid = pg_namespace.oid and d.deptype = 'e')
    order by nspname`;
  return rows.map((r) => r.nspname);
}

/** Number of tables in the database's own schemas. */
export async function tableCount(sql: Sql): Promise<number> {
  const [r] = await sql<{ n: number }[]>`
    select count(*)::int as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'`;
  return r!.n;
}

/** Drops every schema of the database (with their objects) and leaves an empty `public`. */
export async function wipeDatabase(sql: Sql): Promise<void> {
  const schemas = await userSchemas(sql);
  await sql.begin(async (tx) => {
    for (const s of schemas) await tx.unsafe(`drop schema "${s.replace(/"/g, '""')}" cascade`);
    await tx.unsafe("create schema public");
  });
}

/**
 * Makes sure the roles the schema's grants and policies name exist (a fresh cluster has none). Needs a
 * superuser (the embedded cluster's login is one); on the appliance the first boot created them already.
 */
export async function ensureRoles(sql: Sql, log: Logger): Promise<void> {
  try {
    await sql.unsafe(`DO $r$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'secumon_app') THEN CREATE ROLE secumon_app NOLOGIN; END IF;
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'secumon_admin') THEN CREATE ROLE secumon_admin NOLOGIN BYPASSRLS; END IF;
      IF NOT pg_has_role(current_user, 'secumon_app', 'MEMBER') THEN EXECUTE format('GRANT secumon_app TO %I', current_user); END IF;
      IF NOT pg_has_role(current_user, 'secumon_admin', 'MEMBER') THEN EXECUTE format('GRANT secumon_admin TO %I', current_user); END IF;
    END $r$`);
  } catch (e) {
    log.warn(
      { err: errorMessage(e) },
      "could not create the database roles secumon_app/secumon_admin; restoring anyway",
    );
  }
}

/** pg_dump/pg_restore next to the server binaries the collector would use, else from PATH. */
function pgTool(config: Config, name: "pg_dump" | "pg_restore"): string {
  try {
    const p = join(findPgBinDir(config.database.embedded.bin_dir || undefined), name);
    if (existsSync(p)) return p;
  } catch {
    // fall through to PATH
  }
  const found = Bun.which(name);
  if (!found) {
    throw new CollectorError(
      "DEPENDENCY_MISSING",
      `${name} is not installed: install PostgreSQL's client tools (Debian: apt-get install postgresql-client-15)`,
    );
  }
  return found;
}

/** The URL without its password (which goes to the child through PGPASSWORD, not its command line). */
function libpqTarget(url: string): { dbname: string; env: Record<string, string> } {
  try {
    const u = new URL(url);
    const password = decodeURIComponent(u.password);
    u.password = "";
    return { dbname: u.toString(), env: password ? { PGPASSWORD: password } : {} };
  } catch {
    return { dbname: url, env: {} };
  }
}

function childEnv(extra: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", PGCONNECT_TIMEOUT: "10", ...extra };
}

function explainPgError(tool: string, stderr: string): string {
  const text = stderr.trim().split("\n").slice(-6).join("\n");
  let hint = "";
  if (/row-level security/i.test(text)) {
    hint =
      "\nThe tables have forced row-level security: the database user needs BYPASSRLS (as a superuser: ALTER ROLE <user> BYPASSRLS), which the appliance's `secumon` role has.";
  } else if (/server version mismatch/i.test(text)) {
    hint = `\nInstall the ${tool} of the server's major version (or newer) and put it first on PATH.`;
  } else if (/Peer authentication failed/i.test(text)) {
    hint = "\nOn the appliance run the command as root or as the secumon user.";
  }
  return `${tool} failed:\n${text}${hint}`;
}

/** Starts pg_dump (custom format) and returns its output stream; `done` rejects with its error. */
export function startDump(
  config: Config,
  url: string,
): { stream: AsyncIterable<Uint8Array>; done: Promise<void> } {
  const t = libpqTarget(url);
  const proc = Bun.spawn(
    [pgTool(config, "pg_dump"), "--format=custom", "--compress=6", "--no-password", `--dbname=${t.dbname}`],
    { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: childEnv(t.env) },
  );
  const stderr = new Response(proc.stderr).text();
  const done = (async () => {
    const code = await proc.exited;
    if (code !== 0) throw new CollectorError("CHILD_FAILED", explainPgError("pg_dump", await stderr));
  })();
  return { stream: proc.stdout, done };
}

export interface RestoreProcess {
  write(b: Uint8Array): Promise<void>;
  /** Closes stdin and waits for pg_restore: resolves when it committed, throws with its error otherwise. */
  finish(): Promise<void>;
  /** Kills pg_restore (its single transaction rolls back). */
  abort(): void;
}

export function startRestore(config: Config, url: string): RestoreProcess {
  const t = libpqTarget(url);
  const proc = Bun.spawn(
    [
      pgTool(config, "pg_restore"),
      "--no-owner",
      "--single-transaction",
      "--exit-on-error",
      "--no-password",
      `--dbname=${t.dbname}`,
    ],
    { stdin: "pipe", stdout: "ignore", stderr: "pipe", env: childEnv(t.env) },
  );
  const stderr = new Response(proc.stderr).text();
  let failed = false;
  return {
    async write(b) {
      if (failed) return;
      try {
        proc.stdin.write(b);
        await proc.stdin.flush();
      } catch {
        failed = true; // pg_restore exited early; finish() reports why
      }
    },
    async finish() {
      try {
        await proc.stdin.end();
      } catch {
        // already closed
      }
      const code = await proc.exited;
      if (code !== 0) throw new CollectorError("CHILD_FAILED", explainPgError("pg_restore", await stderr));
    },
    abort() {
      proc.kill("SIGTERM");
    },
  };
}
