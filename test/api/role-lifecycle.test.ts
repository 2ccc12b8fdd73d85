/**
 * The api role's lifecycle on its own (a context built by hand, a real migrated database): stop ends the read
 * pool and reports the role stopped; a second start opens a fresh pool into the routes mounted by the first
 * (mounted once), and the API answers again; stop twice is safe.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { apiRole } from "../../src/api/index.ts";
import type { RoleContext } from "../../src/app/role.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { connect, type Sql } from "../../src/storage/db.ts";
import { migratedSql } from "../support/pg.ts";
import { PASSWORD, passwordHash } from "./harness.ts";
import { handBuiltContext } from "./role-context.ts";

const pools: Sql[] = [];
let ctx: RoleContext;
let sql: Sql;

beforeAll(async () => {
  const db = await migratedSql();
  sql = db.sql;
  ctx = handBuiltContext(sql, { api: { port: 0, rate_limiting: { enabled: false } } }, (max) => {
    const p = connect(db.url, { max, log: silentLogger() });
    pools.push(p);
    return p;
  });
  const [t] = await sql`insert into tenants (name, slug) values ('Life', 'life') returning id`;
  await sql`insert into users (email, role, tenant_id, password_hash)
            values ('viewer@life.test', 'viewer', ${t?.id}, ${await passwordHash()})`;
  await sql`insert into agents (tenant_id, name) values (${t?.id}, 'life-1')`;
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end({ timeout: 1 }).catch(() => {})));
});

const call = async (path: string, init: RequestInit = {}) => {
  const res = await ctx.http.handle(new Request(`http://localhost${path}`, init));
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

async function listAgents(): Promise<{ status: number; body: Record<string, unknown> }> {
  const login = await call("/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "viewer@life.test", password: PASSWORD }),
  });
  expect(login.status).toBe(200);
  return call("/api/v1/agents", { headers: { authorization: `Bearer ${login.body.access_token}` } });
}

test("stop ends the read pool and says stopped; start again serves through a fresh pool, routes mounted once", async () => {
  const svc = apiRole.create(ctx);
  expect(svc.readiness?.()).toBe("api: starting");
  await svc.start();
  ctx.http.compile();
  expect(svc.readiness?.()).toBeNull();
  const routes = ctx.http.routes.length;
  expect((await listAgents()).body.pagination).toEqual({ limit: 50, offset: 0, total: 1 });
  expect(pools).toHaveLength(1);

  await svc.stop();
  expect(svc.readiness?.()).toBe("api: stopped");
  const first = pools[0] as Sql;
  await expect(first`select 1`).rejects.toThrow(); // ended
  await svc.stop(); // twice is safe

  await svc.start();
  ctx.http.compile();
  expect(svc.readiness?.()).toBeNull();
  expect(pools).toHaveLength(2);
  expect(ctx.http.routes.length).toBe(routes); // not mounted a second time
  const again = await listAgents();
  expect(again.status).toBe(200);
  expect(again.body.pagination).toEqual({ limit: 50, offset: 0, total: 1 });
  expect((await (pools[1] as Sql)`select 1 as one`)[0]?.one).toBe(1);
  await svc.stop();
});
