/**
 * SessionLock against a real PostgreSQL that the test kills: exclusive between sessions, lost with its session,
 * taken again after the server comes back, and work fenced so a stale holder cannot write.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { silentLogger } from "../../src/observability/logger.ts";
import { connect, type Sql } from "../../src/storage/db.ts";
import { SessionLock } from "../../src/storage/lock.ts";
import type { SupervisedChild } from "../../src/supervisor/child.ts";
import { freePort } from "../../src/supervisor/ports.ts";
import { prepareEmbeddedPg } from "../../src/supervisor/postgres.ts";
import { waitFor } from "../support/collector.ts";
import { tempDir } from "../support/tmp.ts";

let pg: SupervisedChild;
let sql: Sql;
const KEY = [0x7e57, 1] as const;

beforeAll(async () => {
  const p = await prepareEmbeddedPg(
    { dataDir: tempDir("secumon-lock-"), port: freePort(), database: "postgres" },
    { initialMs: 100, maxMs: 500, resetAfterMs: 60_000 },
    silentLogger(),
  );
  pg = p.child;
  await pg.start();
  sql = connect(p.url, { max: 2, log: silentLogger() });
  await sql`CREATE ROLE secumon_admin NOLOGIN`.catch(() => {});
});
afterAll(async () => {
  // close every client before the server goes away, so no socket is reset under a live client
  await sql?.end({ timeout: 5 });
  await pg?.stop();
});

describe("SessionLock", () => {
  test("only one session holds it; closing hands it over", async () => {
    const a = new SessionLock(sql, KEY, silentLogger(), "a");
    const b = new SessionLock(sql, KEY, silentLogger(), "b");
    expect(await a.ensure()).toBe(true);
    expect(await b.ensure()).toBe(false);
    expect(await a.ensure()).toBe(true);
    await a.close();
    await a.close();
    expect(await a.ensure()).toBe(false);
    expect(await b.ensure()).toBe(true);
    await b.close();
  });

  test("a fenced transaction fails for a session that does not hold the lock", async () => {
    const a = new SessionLock(sql, KEY, silentLogger(), "a");
    const b = new SessionLock(sql, KEY, silentLogger(), "b");
    expect(await a.ensure()).toBe(true);
    expect(await a.transaction(async (tx) => (await tx`select 1 as one`)[0]?.one)).toBe(1);
    await expect(b.transaction(async () => 1)).rejects.toThrow("another instance holds the lock");
    await a.close();
    await b.close();
  });

  test("a session that stops answering (its backend frozen) is given up after the check timeout; the lock comes back on a new one", async () => {
    const key = [0x7e57, 2] as const; // not KEY: the frozen session holds this one until it ends
    const a = new SessionLock(sql, key, silentLogger(), "a", 500);
    expect(await a.ensure()).toBe(true);
    const [s] = await a.sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const backend = s?.pid as number;
    process.kill(backend, "SIGSTOP"); // a hung server or a network that drops packets: no error, no answer
    try {
      expect(await a.ensure()).toBe(false); // after 0.5 s, not never
      expect(a.held).toBe(false);
      const b = new SessionLock(sql, key, silentLogger(), "b");
      expect(await b.ensure()).toBe(false); // the frozen session still holds it: nobody else may lead yet
      await b.close();
    } finally {
      process.kill(backend, "SIGCONT"); // it finds its client gone and exits, releasing the lock
    }
    await waitFor(async () => a.ensure(), 10_000, "the lock to be taken on the new session");
    const [now] = await a.sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
    expect(now?.pid).not.toBe(backend);
    await a.close();
  });

  test("a server restart loses the lock without hanging; it is taken again once the server is back", async () => {
    const a = new SessionLock(sql, KEY, silentLogger(), "a");
    expect(await a.ensure()).toBe(true);
    await sql.end({ timeout: 5 }); // only the lock's own session is under test; the pool has done its part
    process.kill(pg.pid!, "SIGKILL");
    await waitFor(async () => (await a.ensure()) === false, 10_000, "the lock to be reported lost");
    expect(a.held).toBe(false);
    await waitFor(async () => a.ensure(), 30_000, "the lock to be taken again after the restart");
    expect(a.held).toBe(true);
    await a.close();
  });
});
