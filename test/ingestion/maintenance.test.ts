/**
 * Maintenance jobs against a real PostgreSQL (plain mode), driven with an explicit clock: partitions ahead,
 * retention drops whole days, rollups are incremental and idempotent, one instance holds the lock.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import type { Sql } from "postgres";
import type { RoleContext } from "../../src/app/role.ts";
import {
  applyRetention,
  ensurePartitions,
  type RetentionSettings,
  refreshRollups,
} from "../../src/maintenance/jobs.ts";
import { createMaintenance } from "../../src/maintenance/service.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { Registry } from "../../src/observability/metrics.ts";
import { testConfig, waitFor } from "../support/collector.ts";
import { migratedSql } from "../support/pg.ts";
import { type Fixture, seed } from "./fixtures.ts";

const DAY = 86_400_000;
const r: RetentionSettings = {
  rawMs: 30 * DAY,
  rollup5mMs: 90 * DAY,
  rollup1hMs: 365 * DAY,
  logsMs: 30 * DAY,
  dedupMs: 4 * DAY,
};
let sql: Sql;
let f: Fixture;

beforeAll(async () => {
  ({ sql } = await migratedSql());
  f = await seed(sql);
}, 60_000);

const partitions = async (parent: string) =>
  (
    await sql<{ relname: string }[]>`select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = ${parent}::regclass order by 1`
  ).map((x) => x.relname);

const dayName = (t: number) => new Date(t).toISOString().slice(0, 10).replace(/-/g, "");

describe("maintenance jobs (plain partitions)", () => {
  test("the mode is plain here, and partitions are created ahead, with tenant RLS on each", async () => {
    expect((await sql`select secumon_telemetry_mode() as m`)[0]!.m).toBe("plain");
    const now = Date.now() + 10 * DAY;
    expect(await ensurePartitions(sql, now)).toBeGreaterThan(0);
    const names = await partitions("system_metrics");
    for (let d = -1; d <= 3; d++) expect(names).toContain(`system_metrics_p${dayName(now + d * DAY)}`);
    expect(await ensurePartitions(sql, now)).toBe(0); // idempotent
    const [rls] =
      await sql`select relrowsecurity, relforcerowsecurity from pg_class where relname = ${`system_metrics_p${dayName(now)}`}`;
    expect(rls).toEqual({ relrowsecurity: true, relforcerowsecurity: true });
  });

  test("retention drops the days entirely past it, keeps the rest, and prunes the ledger and inventory history", async () => {
    const old = Date.now() - 40 * DAY;
    await sql`select secumon_ensure_partitions('system_metrics', ${new Date(old)}, ${new Date(old)})`;
    await sql`insert into system_metrics (time, tenant_id, agent_id, cpu_usage) values
      (${new Date(old)}, ${f.tenant}, ${f.agent}, 1), (now(), ${f.tenant}, ${f.agent}, 2)`;
    await sql`insert into inventory_changes (time, tenant_id, agent_id, item_type, item, change)
      values (${new Date(Date.now() - 400 * DAY)}, ${f.tenant}, ${f.agent}, 'package', 'dpkg:x:amd64', 'installed')`;
    const res = await applyRetention(sql, r, Date.now());
    expect(res.dropped).toContain(`system_metrics_p${dayName(old)}`);
    expect(res.inventoryChanges).toBe(1);
    const rows = await sql`select cpu_usage from system_metrics where agent_id = ${f.agent} order by 1`;
    expect(rows.map((x) => x.cpu_usage)).toEqual([2]);
    expect(await partitions("system_metrics")).toContain(`system_metrics_p${dayName(Date.now())}`);
  });

  test("rollups: complete buckets only, incremental, idempotent, late samples within the lookback counted", async () => {
    const agent = crypto.randomUUID();
    await sql`insert into agents (id, tenant_id, name) values (${agent}, ${f.tenant}, 'rollup-host')`;
    const base = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000; // two hours ago, on the hour
    await sql`select secumon_ensure_partitions('system_metrics', ${new Date(base)}, ${new Date(base + 3 * 3_600_000)})`;
    const ins = (offsetMs: number, cpu: number) =>
      sql`insert into system_metrics (time, tenant_id, agent_id, cpu_usage, mem_total, mem_used, load_avg_1)
          values (${new Date(base + offsetMs)}, ${f.tenant}, ${agent}, ${cpu}, 100, ${cpu}, 1)`;
    await ins(0, 10);
    await ins(60_000, 30);
    await ins(300_000, 50); // next 5-minute bucket
    await ins(3_600_000 + 1000, 70); // next hour
    const now = base + 3_600_000 + 600_000; // 10 min into the second hour
    await refreshRollups(sql, r, now);
    const five =
      await sql`select bucket, samples, cpu_usage_avg, cpu_usage_max, cpu_usage_min, mem_usage_avg, load_avg_1
      from system_metrics_5m where agent_id = ${agent} order by bucket`;
    expect(
      five.map((x) => [
        x.bucket.getTime() - base,
        x.samples,
        x.cpu_usage_avg,
        x.cpu_usage_max,
        x.cpu_usage_min,
        x.mem_usage_avg,
      ]),
    ).toEqual([
      [0, 2, 20, 30, 10, 20],
      [300_000, 1, 50, 50, 50, 50],
      [3_600_000, 1, 70, 70, 70, 70],
    ]);
    // the second hour is not complete yet: no 1 h bucket for it
    const hour =
      await sql`select bucket, samples, cpu_usage_avg, cpu_usage_min, cpu_usage_max from system_metrics_1h where agent_id = ${agent} order by bucket`;
    expect(hour.map((x) => [x.bucket.getTime() - base, x.samples, x.cpu_usage_avg])).toEqual([[0, 3, 30]]);
    // a late sample for an already computed bucket (within the lookback) is picked up; rerunning changes nothing else
    await ins(3_600_000 + 120_000, 90);
    await refreshRollups(sql, r, now + 60_000);
    await refreshRollups(sql, r, now + 60_000);
    const again =
      await sql`select samples, cpu_usage_max from system_metrics_5m where agent_id = ${agent} and bucket = ${new Date(base + 3_600_000)}`;
    expect(again[0]).toEqual({ samples: 2, cpu_usage_max: 90 });
    const [n] = await sql`select count(*)::int as n from system_metrics_5m where agent_id = ${agent}`;
    expect(n?.n).toBe(3);
  });
});

describe("maintenance role", () => {
  function ctx(metrics: Registry): RoleContext {
    return {
      config: testConfig(),
      log: silentLogger(),
      metrics,
      sql,
      natsUrl: "",
      nats: null,
      keyring: null as never,
      dataDir: "",
      http: null as never,
    };
  }

  test("one instance leads; the other takes over when it stops", async () => {
    const fast = { rollupEveryMs: 100, housekeepingEveryMs: 60_000, leaderRetryMs: 100 };
    const a = createMaintenance(ctx(new Registry()), fast);
    const b = createMaintenance(ctx(new Registry()), fast);
    await a.start();
    await waitFor(async () => a.isLeader(), 10_000, "a to lead");
    await b.start();
    await Bun.sleep(300);
    expect(b.isLeader()).toBe(false);
    await a.stop();
    await waitFor(async () => b.isLeader(), 10_000, "b to take over");
    await b.stop();
  });
});
