/**
 * One throwaway PostgreSQL cluster per test run (the supervisor's own embedded-cluster code, in a temp dir),
 * started on first use and stopped when the run ends. Each caller gets a fresh database cloned from a
 * template that already has every migration applied. Set SECUMON_TEST_DATABASE_URL to use an existing server
 * instead (it must allow CREATE DATABASE).
 */
import postgres, { type Sql } from "postgres";
import { embeddedMigrations } from "../../src/assets/embedded.gen.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { connect } from "../../src/storage/db.ts";
import { runMigrations } from "../../src/storage/migrate.ts";
import type { SupervisedChild } from "../../src/supervisor/child.ts";
import { freePort } from "../../src/supervisor/ports.ts";
import { prepareEmbeddedPg } from "../../src/supervisor/postgres.ts";
import { tempDir } from "./tmp.ts";

interface Cluster {
  /** URL of the maintenance database on the test server. */
  adminUrl: string;
  child: SupervisedChild | null;
}

let cluster: Promise<Cluster> | null = null;
let template: Promise<string> | null = null;
const opened: Sql[] = [];

function urlFor(base: string, database: string): string {
  const u = new URL(base);
  u.pathname = `/${database}`;
  return u.toString();
}

export function testCluster(): Promise<Cluster> {
  cluster ??= (async () => {
    const external = process.env.SECUMON_TEST_DATABASE_URL;
    if (external) return { adminUrl: external, child: null };
    const pg = await prepareEmbeddedPg(
      { dataDir: tempDir("secumon-pg-"), port: freePort(), database: "postgres" },
      { initialMs: 200, maxMs: 2000, resetAfterMs: 60_000 },
      silentLogger(),
    );
    await pg.child.start();
    return { adminUrl: pg.url, child: pg.child };
  })();
  return cluster;
}

// CREATE DATABASE … TEMPLATE fails while another copy of the same template is in progress
// ("source database is being accessed by other users"): run administrative statements one at a time.
let adminQueue: Promise<unknown> = Promise.resolve();

function admin<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
  const run = async () => {
    const { adminUrl } = await testCluster();
    const sql = connect(adminUrl, { max: 1, log: silentLogger() });
    try {
      return await fn(sql);
    } finally {
      await sql.end({ timeout: 2 });
    }
  };
  const p = adminQueue.then(run, run);
  adminQueue = p.catch(() => {});
  return p;
}

function name(prefix: string): string {
  return `${prefix}_${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`;
}

/** A new, empty database; returns its URL. */
export async function emptyDatabase(): Promise<string> {
  const db = name("t");
  await admin((sql) => sql.unsafe(`create database ${db}`));
  return urlFor((await testCluster()).adminUrl, db);
}

/** A new database with every migration applied (cloned from a template, so fast); returns its URL. */
export async function migratedDatabase(): Promise<string> {
  template ??= (async () => {
    const url = await emptyDatabase();
    const sql = connect(url, { max: 1, log: silentLogger() });
    await runMigrations(sql, embeddedMigrations, silentLogger());
    await sql.end({ timeout: 2 });
    return new URL(url).pathname.slice(1);
  })();
  const tpl = await template;
  const db = name("m");
  await admin((sql) => sql.unsafe(`create database ${db} template ${tpl}`));
  return urlFor((await testCluster()).adminUrl, db);
}

/** A connection to a fresh migrated database, closed at the end of the run. */
export async function migratedSql(): Promise<{ sql: Sql; url: string }> {
  const url = await migratedDatabase();
  const sql = connect(url, { max: 4, log: silentLogger() });
  opened.push(sql);
  return { sql, url };
}

export async function stopTestCluster(): Promise<void> {
  await Promise.all(opened.splice(0).map((s) => s.end({ timeout: 1 }).catch(() => {})));
  if (!cluster) return;
  const c = await cluster.catch(() => null);
  cluster = null;
  template = null;
  await c?.child?.stop();
}

export { postgres };
