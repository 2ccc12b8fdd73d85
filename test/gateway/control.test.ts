/**
 * The Connect control channel's configuration pushes (src/gateway/control.ts) against a real PostgreSQL: every
 * change reaches the open streams of that agent only, in order, never an older configuration after a newer one.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ControlChannels, REKEY_BEFORE_MS, rekeyAt } from "../../src/gateway/control.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { type Sql, withAdmin } from "../../src/storage/db.ts";
import { waitFor } from "../support/collector.ts";
import { migratedSql } from "../support/pg.ts";
import { createTenant } from "./harness.ts";

let sql: Sql;
let control: ControlChannels;

beforeAll(async () => {
  sql = (await migratedSql()).sql;
  control = new ControlChannels(sql, silentLogger());
  await control.listen();
});

afterAll(async () => {
  await control?.stop();
});

async function agent(tenant: string): Promise<string> {
  const [a] = await withAdmin(
    sql,
    (tx) => tx<{ id: string }[]>`insert into agents (tenant_id, name) values (${tenant}, 'a') returning id`,
  );
  return a!.id;
}

test("20 quick changes: the agent's open streams see them in order and end on the last; other agents see none", async () => {
  const tenant = await createTenant(sql);
  const id = await agent(tenant);
  const other = await agent(tenant);
  const seen: number[][] = [[], []];
  const unregister = [0, 1].map((i) =>
    control.register({ kind: "agent", tenantId: tenant, id }, (json) =>
      seen[i]!.push(JSON.parse(json).n ?? 0),
    ),
  );
  const foreign: string[] = [];
  const unregisterOther = control.register({ kind: "agent", tenantId: tenant, id: other }, (j) =>
    foreign.push(j),
  );
  for (let n = 1; n <= 20; n++) {
    await withAdmin(sql, (tx) => tx`update agents set config = ${tx.json({ n })} where id = ${id}`);
  }
  await waitFor(
    async () => seen.every((s) => s.at(-1) === 20) || undefined,
    10_000,
    "the last configuration",
  );
  for (const s of seen) {
    for (let i = 1; i < s.length; i++) expect(s[i]!).toBeGreaterThanOrEqual(s[i - 1]!);
  }
  expect(foreign).toEqual([]);
  // an update that changes nothing sends nothing (the trigger fires on a different value only): after it, a
  // change of the other agent (notified later) arrives, and then this agent's reader is idle
  const before = seen.map((s) => s.length);
  await withAdmin(sql, (tx) => tx`update agents set config = config where id = ${id}`);
  await withAdmin(sql, (tx) => tx`update agents set config = ${tx.json({ other: 1 })} where id = ${other}`);
  await waitFor(async () => foreign.length === 1 || undefined, 10_000, "the other agent's change");
  expect(JSON.parse(foreign[0]!)).toEqual({ other: 1 });
  await control.changed(id); // queued behind any read the no-op could have started: pushes once more
  expect(seen.map((s) => s.length)).toEqual(before.map((n) => n + 1));
  for (const u of [...unregister, unregisterOther]) u();
  expect(control.openAgents).toBe(0);
});

test("a change committed while the listener is cut off reaches the stream once it listens again", async () => {
  const tenant = await createTenant(sql);
  const id = await agent(tenant);
  const seen: { missed?: boolean }[] = [];
  const unregister = control.register({ kind: "agent", tenantId: tenant, id }, (json) =>
    seen.push(JSON.parse(json)),
  );
  // one transaction: the listener's backend is terminated, then the change commits; its NOTIFY goes out at
  // commit, when nobody listens: only the re-read after the listener reconnects can deliver it
  await sql.begin(async (tx) => {
    const cut = await tx`
      select pg_terminate_backend(pid) from pg_stat_activity
       where datname = current_database() and pid <> pg_backend_pid()
         and query ilike ${"%listen%secumon_agent_config_changed%"}`;
    expect(cut).toHaveLength(1);
    await tx`update agents set config = ${tx.json({ missed: true })} where id = ${id}`;
  });
  await waitFor(
    async () => seen.some((c) => c.missed) || undefined,
    15_000,
    "the configuration missed by NOTIFY",
  );
  unregister();
});

test("re-key time: 14 days before the end, or a third of the lifetime for short-lived certificates", () => {
  const day = 86_400_000;
  expect(rekeyAt(0, 90 * day)).toBe(90 * day - REKEY_BEFORE_MS);
  expect(rekeyAt(0, 9000)).toBe(6000);
  expect(rekeyAt(Number.NaN, 90 * day)).toBe(90 * day - REKEY_BEFORE_MS);
});

test("a stream whose push throws does not keep the configuration from the agent's other streams", async () => {
  const tenant = await createTenant(sql);
  const id = await agent(tenant);
  const p = { kind: "agent" as const, tenantId: tenant, id };
  const unregisterBroken = control.register(p, () => {
    throw new Error("write after end");
  });
  const got: string[] = [];
  const unregister = control.register(p, (json) => got.push(json));
  await withAdmin(sql, (tx) => tx`update agents set config = ${tx.json({ n: 1 })} where id = ${id}`);
  await control.changed(id); // resolves (does not reject) although one push threw
  expect(got.map((j) => JSON.parse(j))).toContainEqual({ n: 1 });
  unregisterBroken();
  unregister();
});
