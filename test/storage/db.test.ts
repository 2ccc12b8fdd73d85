/**
 * src/storage/db.ts against a real PostgreSQL: what an unusable database turns into, the socket URL form the
 * embedded cluster uses, and the transaction scoping of withTenant / withAdmin.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { CollectorError } from "../../src/lib/errors.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import {
  connect,
  describeTarget,
  ping,
  type Sql,
  tenantQuery,
  withAdmin,
  withTenant,
} from "../../src/storage/db.ts";
import { loadMigrationsFromDir, runMigrations } from "../../src/storage/migrate.ts";
import { emptyDatabase } from "../support/pg.ts";

const pools: Sql[] = [];
function open(url: string, max = 2): Sql {
  const sql = connect(url, { max, log: silentLogger(), connectTimeoutSeconds: 2 });
  pools.push(sql);
  return sql;
}
afterAll(async () => {
  await Promise.all(pools.splice(0).map((p) => p.end({ timeout: 2 })));
});

async function failure(p: Promise<unknown>): Promise<CollectorError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CollectorError);
  return e as CollectorError;
}

describe("an unusable database becomes DATABASE_UNAVAILABLE, without the password", () => {
  test("nothing listening", async () => {
    const sql = open("postgres://collector:s3cret-pw@127.0.0.1:1/secumon");
    const e = await failure(ping(sql));
    expect(e.code).toBe("DATABASE_UNAVAILABLE");
    expect(e.status).toBe(503);
    expect(e.message).toBe(
      "cannot connect to PostgreSQL at collector@127.0.0.1:1/secumon (ECONNREFUSED): check that the server is " +
        "running and listening there and that database.url (SECUMON_DATABASE__URL) names the right host and port",
    );
    // the migration runner, which is what meets the database first at start-up, says the same
    const m = await failure(runMigrations(sql, [], silentLogger()));
    expect(m.code).toBe("DATABASE_UNAVAILABLE");
    expect(m.message).not.toContain("s3cret-pw");
  });

  test("unknown host", async () => {
    const e = await failure(ping(open("postgres://collector:s3cret-pw@db.invalid:5432/secumon")));
    expect(e.code).toBe("DATABASE_UNAVAILABLE");
    expect(e.message).toStartWith("cannot resolve the database host of collector@db.invalid:5432/secumon (");
    expect(e.message).not.toContain("s3cret-pw");
  });

  test("missing database and unknown user, on the real server", async () => {
    const url = new URL(await emptyDatabase());
    url.pathname = "/no_such_database";
    const missing = await failure(ping(open(url.toString())));
    expect(missing.code).toBe("DATABASE_UNAVAILABLE");
    expect(missing.message).toStartWith(`database "no_such_database" does not exist on PostgreSQL at `);
    expect(missing.message).toContain("fix the database name in database.url");

    url.pathname = "/postgres";
    url.username = "nobody_here";
    url.password = "s3cret-pw";
    const login = await failure(ping(open(url.toString())));
    expect(login.code).toBe("DATABASE_UNAVAILABLE");
    expect(login.message).toContain("refused the login");
    expect(login.message).toContain("Check the user and password in database.url");
    expect(login.message).not.toContain("s3cret-pw");
  });

  test("a malformed URL is a configuration error that does not echo it", () => {
    let caught: unknown;
    try {
      connect("mysql://root:s3cret-pw@db/x", { log: silentLogger() });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(CollectorError);
    expect((caught as CollectorError).code).toBe("CONFIG_INVALID");
    expect((caught as CollectorError).message).not.toContain("s3cret-pw");
  });
});

describe("URLs", () => {
  test("libpq's ?host=/socket/dir selects the Unix socket", async () => {
    const sql = open("postgres://secumon@localhost:15432/secumon?host=%2Frun%2Fsecumon%2F&sslmode=disable");
    expect(sql.options.path).toBe("/run/secumon/.s.PGSQL.15432");
    expect(describeTarget(sql)).toBe("secumon@socket /run/secumon/.s.PGSQL.15432/secumon");
  });
});

describe("withTenant / withAdmin", () => {
  const A = "aaaaaaaa-0000-4000-8000-00000000000a";
  let sql: Sql;
  beforeAll(async () => {
    sql = open(await emptyDatabase(), 1); // one connection: every transaction below reuses the same session
    await runMigrations(
      sql,
      await loadMigrationsFromDir(join(import.meta.dir, "../../migrations")),
      silentLogger(),
    );
  });

  test("role and tenant hold for the transaction only", async () => {
    const [login] = await sql<{ u: string }[]>`select current_user as u`;
    const inside = await withTenant(sql, A, async (tx) => {
      const [r] = await tx<
        { u: string; t: string }[]
      >`select current_user as u, current_setting('secumon.tenant_id') as t`;
      return r;
    });
    expect(inside).toEqual({ u: "secumon_app", t: A });
    const [after] = await sql<{ u: string; t: string | null }[]>`
      select current_user as u, nullif(current_setting('secumon.tenant_id', true), '') as t`;
    expect(after).toEqual({ u: login!.u, t: null });

    const [admin] = await withAdmin(sql, (tx) => tx<{ u: string }[]>`select current_user as u`);
    expect(admin?.u).toBe("secumon_admin");
  });

  test("an error inside rolls the transaction back and reaches the caller unchanged", async () => {
    await sql`insert into tenants (id, name, slug) values (${A}, 'A', 'a') on conflict do nothing`;
    const e = await withTenant(sql, A, async (tx) => {
      await tx`insert into agents (tenant_id, name) values (${A}, 'rolled-back')`;
      throw new Error("handler failed");
    }).catch((err: unknown) => err);
    expect((e as Error).message).toBe("handler failed");
    expect(await sql`select 1 from agents where name = 'rolled-back'`).toHaveLength(0);
  });

  test("a tenant id that is not a UUID is refused before reaching the database", async () => {
    const e = await failure(withTenant(sql, "' or 1=1 --", async () => 1));
    expect(e.code).toBe("BAD_REQUEST");
  });
});

describe("tenantQuery (one read-only statement in one round trip)", () => {
  const A = "aaaaaaaa-0000-4000-8000-00000000000a";
  const B = "bbbbbbbb-0000-4000-8000-00000000000b";
  let url: string;
  let sql: Sql;
  beforeAll(async () => {
    url = await emptyDatabase();
    sql = open(url, 1); // one connection: every call below reuses the same session
    await runMigrations(
      sql,
      await loadMigrationsFromDir(join(import.meta.dir, "../../migrations")),
      silentLogger(),
    );
    await sql`insert into tenants (id, name, slug) values (${A}, 'A', 'a'), (${B}, 'B', 'b')`;
    await sql`insert into agents (tenant_id, name) values (${A}, 'a-1'), (${A}, 'a-2'), (${B}, 'b-1')`;
  });

  test("sees only the tenant's rows, as secumon_app, and nothing carries over to the next use", async () => {
    const rows = await tenantQuery(
      sql,
      A,
      (tx) => tx<{ name: string }[]>`select name from agents order by name`,
    );
    expect(rows.map((r) => r.name)).toEqual(["a-1", "a-2"]);
    const [inside] = await tenantQuery(
      sql,
      B,
      (tx) => tx<{ u: string; t: string; plan: string }[]>`
        select current_user as u, current_setting('secumon.tenant_id') as t,
               current_setting('plan_cache_mode') as plan`,
      { genericPlan: true },
    );
    expect(inside).toEqual({ u: "secumon_app", t: B, plan: "force_generic_plan" });
    const [login] = await sql<{ u: string }[]>`select session_user as u`;
    const [after] = await sql<{ u: string; t: string | null; plan: string; tx: string }[]>`
      select current_user as u, nullif(current_setting('secumon.tenant_id', true), '') as t,
             current_setting('plan_cache_mode') as plan, current_setting('transaction_read_only') as tx`;
    expect(after).toEqual({ u: login!.u, t: null, plan: "auto", tx: "off" });
  });

  test("a write fails (read only) and leaves nothing behind; the connection stays usable", async () => {
    const e = await tenantQuery(
      sql,
      A,
      (tx) => tx`insert into agents (tenant_id, name) values (${A}, 'written')`,
    )
      .then(() => null)
      .catch((err: unknown) => err);
    expect((e as { code?: string }).code).toBe("25006"); // read_only_sql_transaction
    expect(await sql`select 1 from agents where name = 'written'`).toHaveLength(0);
    const again = await tenantQuery(sql, A, (tx) => tx`select count(*)::int as n from agents`);
    expect(again[0]?.n).toBe(2);
  });

  test("a failing statement reaches the caller; the transaction ended (no open transaction left)", async () => {
    const e = await tenantQuery(sql, A, (tx) => tx`select 1 / 0`)
      .then(() => null)
      .catch((err: unknown) => err);
    expect((e as { code?: string }).code).toBe("22012"); // division_by_zero
    const [state] = await sql<{ s: string }[]>`select current_setting('transaction_read_only') as s`;
    expect(state?.s).toBe("off");
  });

  test("a tenant id that is not a UUID is refused before reaching the database", async () => {
    const e = await failure(tenantQuery(sql, "' or 1=1 --", (tx) => tx`select 1`));
    expect(e.code).toBe("BAD_REQUEST");
  });
});

describe("a session that ends under us (PostgreSQL restarted, a backend terminated)", () => {
  const A = "aaaaaaaa-0000-4000-8000-00000000000a";
  let sql: Sql;
  let admin: Sql;
  beforeAll(async () => {
    const url = await emptyDatabase();
    sql = open(url, 1); // one connection: the dead one must be replaced, not worked around
    admin = open(url, 1);
    await runMigrations(
      sql,
      await loadMigrationsFromDir(join(import.meta.dir, "../../migrations")),
      silentLogger(),
    );
    await sql`insert into tenants (id, name, slug) values (${A}, 'A', 'a')`;
    await sql`insert into agents (tenant_id, name) values (${A}, 'a-1')`;
  });
  const pid = async () =>
    (await tenantQuery(sql, A, (tx) => tx<{ pid: number }[]>`select pg_backend_pid() as pid`))[0]?.pid;
  const terminate = (p: number | undefined) => admin`select pg_terminate_backend(${p ?? 0})`;

  test("an idle pooled connection the server ended: tenantQuery runs its read again on a new one", async () => {
    const before = await pid();
    await terminate(before);
    const rows = await tenantQuery(sql, A, (tx) => tx<{ name: string }[]>`select name from agents`);
    expect(rows.map((r) => r.name)).toEqual(["a-1"]);
    expect(await pid()).not.toBe(before);
  });

  test("an idle pooled connection the server ended: withTenant begins its transaction again on a new one", async () => {
    const [before] = await withTenant(sql, A, (tx) => tx<{ pid: number }[]>`select pg_backend_pid() as pid`);
    await terminate(before?.pid);
    const after = await withTenant(sql, A, async (tx) => {
      await tx`insert into agents (tenant_id, name) values (${A}, 'written-once')`;
      return (await tx<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]?.pid;
    });
    expect(after).not.toBe(before?.pid);
    expect(await sql`select 1 from agents where name = 'written-once'`).toHaveLength(1);
    await sql`delete from agents where name = 'written-once'`;
  });

  test("a backend terminated inside a transaction: DATABASE_UNAVAILABLE to the caller, no crash, the pool recovers", async () => {
    // postgres.js 3.4.9 threw an uncaught TypeError here (a write queued for the closed socket), which ends
    // the process; patches/postgres@3.4.9.patch settles it as CONNECTION_CLOSED instead
    let victim: number | undefined;
    const running = withTenant(sql, A, async (tx) => {
      victim = (await tx<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]?.pid;
      await tx`select pg_sleep(5)`;
    });
    while (victim === undefined) await Bun.sleep(10);
    await terminate(victim);
    const e = await failure(running);
    expect(e.code).toBe("DATABASE_UNAVAILABLE");
    expect(e.message).toContain("check that the server");
    await Bun.sleep(50); // a write the closed connection had queued runs now (setImmediate): it must not throw
    const n = await withTenant(sql, A, (tx) => tx<{ n: number }[]>`select count(*)::int as n from agents`);
    expect(n[0]?.n).toBe(1);
  });
});
