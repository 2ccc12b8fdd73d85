/**
 * Telemetry reads against rows inserted directly: charts at raw/5m/1h resolution (rollups used where the
 * rollup job has reached, raw data after), multi-series queries grouped by tag/agent/device, logs search,
 * target results, inventory search and changes, availability reports as JSON and CSV.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { parseRange, pickResolution, stepFor } from "../../src/api/telemetry/range.ts";
import { querySeries } from "../../src/api/telemetry/series.ts";
import { withTenant } from "../../src/storage/db.ts";
import { type Harness, harness, login, seedTenant, seedUser } from "./harness.ts";

let h: Harness;
let tenant: string;
let token: string;
let otherToken: string;
let web1: string;
let web2: string;
let db1: string;
let target: string;
let now: number;
const MIN = 60_000;

beforeAll(async () => {
  h = await harness();
  now = Math.floor(h.clock.t / (5 * MIN)) * 5 * MIN; // 5-minute aligned: whole intervals in the reports
  h.clock.t = now + 1000;
  const sql = h.deps.sql;
  tenant = await seedTenant(h, "tel-a");
  const other = await seedTenant(h, "tel-b");
  await seedUser(h, "viewer@tel.test", "viewer", tenant);
  await seedUser(h, "admin@tel-b.test", "admin", other);
  token = (await login(h, "viewer@tel.test")).access_token;
  otherToken = (await login(h, "admin@tel-b.test")).access_token;
  const agent = async (name: string, tags: string[]) =>
    (
      await sql`insert into agents (tenant_id, name, hostname, tags, created_at)
                values (${tenant}, ${name}, ${`${name}.lan`}, ${tags}, ${new Date(now - 10 * 86_400_000)}) returning id`
    )[0]?.id as string;
  web1 = await agent("web-1", ["web", "prod"]);
  web2 = await agent("web-2", ["web"]);
  db1 = await agent("db-1", ["db"]);
  for (const t of [
    "system_metrics",
    "disk_metrics",
    "logs",
    "scan_results",
    "system_metrics_5m",
    "system_metrics_1h",
    "scan_results_1h",
  ])
    await sql`select secumon_ensure_partitions(${t}, ${new Date(now - 12 * 86_400_000)}, ${new Date(now + 86_400_000)})`;
  // 8 days of 1-minute samples: web-1 at 10 % CPU, web-2 at 30 %, db-1 at 70 %; memory 50 % everywhere
  await sql`
    insert into system_metrics (time, tenant_id, agent_id, cpu_usage, load_avg_1, mem_total, mem_used, swap_used)
    select ts, ${tenant}, a.id, a.cpu, 1.5, 1000, 500, 0
    from generate_series(${new Date(now - 8 * 86_400_000)}::timestamptz, ${new Date(now - MIN)}::timestamptz, interval '1 minute') ts,
         (values (${web1}::uuid, 10.0), (${web2}::uuid, 30.0), (${db1}::uuid, 70.0)) a (id, cpu)`;
  await sql`
    insert into disk_metrics (time, tenant_id, agent_id, device, mountpoint, usage_percent)
    select ts, ${tenant}, ${db1}, d.dev, d.mp, d.pct
    from generate_series(${new Date(now - 3600_000)}::timestamptz, ${new Date(now - MIN)}::timestamptz, interval '1 minute') ts,
         (values ('sda1', '/', 40.0), ('sdb1', '/var', 90.0)) d (dev, mp, pct)`;
  target = (
    await sql`insert into targets (tenant_id, name, address, type) values (${tenant}, 'site', 'https://x.test', 'http') returning id`
  )[0]?.id as string;
});

const get = (path: string, tok = token) => h.call("GET", path, { token: tok });

describe("agent chart", () => {
  test("-1h: raw data, one point a minute", async () => {
    const r = await get(`/api/v1/agents/${web1}/metrics?from=-1h&to=now`);
    expect(r.status).toBe(200);
    expect(r.body.resolution).toBe("raw");
    expect(r.body.step_ms).toBe(60_000);
    expect(r.body.columns.time.length).toBeGreaterThanOrEqual(59);
    expect(new Set(r.body.columns.cpu_usage)).toEqual(new Set([10]));
    expect(new Set(r.body.columns.mem_usage)).toEqual(new Set([50]));
    expect(Object.keys(r.body.columns).sort()).toEqual(
      [
        "time",
        "cpu_usage",
        "cpu_usage_min",
        "cpu_usage_max",
        "mem_usage",
        "mem_usage_min",
        "mem_usage_max",
        "load_avg_1",
        "load_avg_1_min",
        "load_avg_1_max",
        "swap_used",
        "swap_used_min",
        "swap_used_max",
      ].sort(),
    );
  });

  test("-24h picks 5-minute buckets, -7d hourly; without rollups they are computed from raw data", async () => {
    const d = await get(`/api/v1/agents/${web2}/metrics?from=-24h`);
    expect(d.body.resolution).toBe("5m");
    expect(d.body.step_ms).toBe(300_000);
    expect(d.body.columns.time.length).toBeGreaterThanOrEqual(288);
    expect(new Set(d.body.columns.cpu_usage)).toEqual(new Set([30]));
    const w = await get(`/api/v1/agents/${web2}/metrics?from=-7d&metrics=cpu_usage`);
    expect(w.body.resolution).toBe("1h");
    expect(w.body.columns.time.length).toBeGreaterThanOrEqual(168);
    expect(Object.keys(w.body.columns)).toEqual(["time", "cpu_usage", "cpu_usage_min", "cpu_usage_max"]);
  });

  test("rollups serve the buckets the rollup job has completed; raw data the rest", async () => {
    const sql = h.deps.sql;
    const doneUntil = new Date(Math.floor((now - 6 * 3600_000) / 300_000) * 300_000);
    await sql`select secumon_refresh_rollup('system_metrics_5m', ${new Date(now - 2 * 86_400_000)}, ${doneUntil})`;
    await sql`insert into rollup_progress (name, done_until) values ('system_metrics_5m', ${doneUntil})
              on conflict (name) do update set done_until = excluded.done_until`;
    // change the raw rows the rollup already covers: the chart must keep showing the rollup's values
    await sql`update system_metrics set cpu_usage = 99 where agent_id = ${db1} and time < ${doneUntil}
              and time >= ${new Date(now - 2 * 86_400_000)}`;
    const r = await get(`/api/v1/agents/${db1}/metrics?from=-24h&metrics=cpu_usage`);
    expect(r.body.resolution).toBe("5m");
    const { time, cpu_usage } = r.body.columns;
    for (let i = 0; i < time.length; i++) expect(cpu_usage[i]).toBe(70);
    expect(time.at(-1)).toBeGreaterThan(doneUntil.getTime()); // recent buckets come from raw data
    const raw = await get(`/api/v1/agents/${db1}/metrics?from=-24h&resolution=raw&metrics=cpu_usage`);
    expect(raw.body.columns.cpu_usage).toContain(99);
  });

  test("the chart built by PostgreSQL as JSON has the same points as the general series query", async () => {
    // db-1 after the previous test: rollup rows up to done_until (70 %), raw rows at 99 % under them
    await h.deps.sql`update system_metrics set cpu_usage = 60 + extract(minute from time)::int % 7,
                     mem_used = 400 + extract(minute from time)::int % 5 where agent_id = ${db1} and time >= ${new Date(now - 6 * 3600_000)}`;
    try {
      await sameAsSeries();
    } finally {
      await h.deps.sql`update system_metrics set cpu_usage = 70, mem_used = 500
                       where agent_id = ${db1} and time >= ${new Date(now - 6 * 3600_000)}`;
    }
  });

  async function sameAsSeries() {
    for (const [from, resolution] of [
      ["-1h", "auto"],
      ["-24h", "auto"],
      ["-7d", "auto"],
      ["-24h", "raw"],
    ] as const) {
      const r = await get(`/api/v1/agents/${db1}/metrics?from=${from}&resolution=${resolution}`);
      expect(r.status).toBe(200);
      const range = parseRange({ from, to: "now" }, h.clock.t);
      const res = pickResolution(range, resolution);
      const names = ["cpu_usage", "mem_usage", "load_avg_1", "swap_used"];
      const { series } = await withTenant(h.deps.sql, tenant, (tx) =>
        querySeries(tx, {
          metrics: names.map((m) => `system.${m}`),
          range,
          resolution: res,
          stepMs: stepFor(range, res),
          tenantId: tenant,
          agentIds: [db1],
          groupBy: "none",
        }),
      );
      const s = series[0];
      expect(r.body.columns.time).toEqual(s?.time);
      for (const m of names) {
        const v = s?.values[`system.${m}`];
        for (const [key, want] of [
          [m, v?.avg],
          [`${m}_min`, v?.min],
          [`${m}_max`, v?.max],
        ] as const) {
          const got = r.body.columns[key] as (number | null)[];
          expect(got.length).toBe(want?.length ?? 0);
          got.forEach((x, i) => {
            const w = want?.[i] ?? null;
            if (x === null || w === null) expect(x).toBe(w);
            else expect(x).toBeCloseTo(w, 9);
          });
        }
      }
    }
  }

  test("bad input: 422 naming the parameter; another tenant's agent: 404", async () => {
    const bad = await get(`/api/v1/agents/${web1}/metrics?from=yesterday`);
    expect(bad.status).toBe(422);
    expect(bad.body.details[0].path).toBe("query/from");
    const order = await get(`/api/v1/agents/${web1}/metrics?from=-1h&to=-2h`);
    expect(order.body.details[0].path).toBe("query/to");
    const metric = await get(`/api/v1/agents/${web1}/metrics?metrics=cpu_usage,password_hash`);
    expect(metric.status).toBe(422);
    expect(metric.body.details[0].path).toBe("query/metrics/1");
    expect((await get(`/api/v1/agents/${web1}/metrics?resolution=10s`)).status).toBe(422);
    expect((await get(`/api/v1/agents/${web1}/metrics`, otherToken)).status).toBe(404);
    expect((await get(`/api/v1/agents/${crypto.randomUUID()}/metrics`)).status).toBe(404);
  });
});

describe("POST /metrics/query", () => {
  const q = (body: unknown, tok = token) => h.call("POST", "/api/v1/metrics/query", { token: tok, body });

  test("several series: average by tag, maximum by agent, disk usage by device", async () => {
    const r = await q({
      from: "-30m",
      queries: [
        { metric: "system.cpu_usage", aggregation: "avg", group_by: "tag" },
        { metric: "system.cpu_usage", aggregation: "max", tags: ["web"], group_by: "agent" },
        { metric: "disk.usage_percent", aggregation: "max", group_by: "device" },
        { metric: "system.cpu_usage", aggregation: "count", agents: [db1] },
      ],
    });
    expect(r.status).toBe(200);
    const [byTag, byAgent, disk, count] = r.body.results;
    const tagAvg = Object.fromEntries(
      byTag.series.map((s: { group: string; values: number[] }) => [s.group, s.values[0]]),
    );
    expect(tagAvg).toEqual({ db: 70, prod: 10, web: 20 });
    expect(byAgent.series.map((s: { group: string }) => s.group).sort()).toEqual([web1, web2].sort());
    expect(
      Object.fromEntries(disk.series.map((s: { group: string; values: number[] }) => [s.group, s.values[0]])),
    ).toEqual({
      sda1: 40,
      sdb1: 90,
    });
    expect(count.series[0].values.every((v: number) => v === 1)).toBe(true);
  });

  test("bad queries: 422 with paths; another tenant sees no series", async () => {
    const r = await q({ queries: [{ metric: "system.nope" }] });
    expect(r.status).toBe(422);
    expect(r.body.details[0].path).toBe("body/queries/0/metric");
    const g = await q({ queries: [{ metric: "system.cpu_usage", group_by: "device" }] });
    expect(g.body.details[0].path).toBe("body/queries/0/group_by");
    const step = await q({ from: "-90d", step_seconds: 60, queries: [{ metric: "system.cpu_usage" }] });
    expect(step.body.details[0].path).toBe("body/step_seconds");
    expect((await q({ queries: [] })).status).toBe(422);
    const other = await q(
      { from: "-30m", queries: [{ metric: "system.cpu_usage", group_by: "agent" }] },
      otherToken,
    );
    expect(other.body.results[0].series).toEqual([]);
  });
});

describe("logs, target results, inventory", () => {
  beforeAll(async () => {
    const sql = h.deps.sql;
    const at = (m: number) => new Date(now - m * MIN);
    await sql`insert into logs (time, tenant_id, agent_id, level, source, message) values
      (${at(50)}, ${tenant}, ${web1}, 'info', 'sshd', 'Accepted publickey for deploy from 10.0.0.5'),
      (${at(40)}, ${tenant}, ${web1}, 'warning', 'sshd', 'Failed password for root from 203.0.113.9'),
      (${at(30)}, ${tenant}, ${web1}, 'error', 'nginx', 'upstream timed out while reading response'),
      (${at(20)}, ${tenant}, ${web1}, 'critical', 'kernel', 'Out of memory: killed process 4242'),
      (${at(60 * 30)}, ${tenant}, ${web1}, 'error', 'sshd', 'Failed password for admin (old)')`;
    const probe = (await sql`insert into probes (tenant_id, name) values (${tenant}, 'p1') returning id`)[0]
      ?.id;
    await sql`
      insert into scan_results (time, tenant_id, probe_id, target_id, test_type, success, latency_ms, error_message)
      select ${new Date(now)}::timestamptz - (i || ' minutes')::interval, ${tenant}, ${probe}, ${target}, 'http',
             i % 10 <> 0, 20 + i % 3, case when i % 10 = 0 then 'timeout' end
      from generate_series(1, 100) i`;
    await sql`insert into inventory_hosts (tenant_id, agent_id, collected_at, hostname, os_name, packages)
              values (${tenant}, ${web1}, ${at(5)}, 'web-1.lan', 'debian', 2)`;
    await sql`insert into inventory_packages (tenant_id, agent_id, manager, name, arch, version, first_seen) values
      (${tenant}, ${web1}, 'dpkg', 'openssl', 'amd64', '3.0.2', ${at(5)}),
      (${tenant}, ${web2}, 'dpkg', 'openssl', 'amd64', '3.0.11', ${at(5)}),
      (${tenant}, ${db1}, 'dpkg', 'openssl', 'amd64', '3.0.2', ${at(5)}),
      (${tenant}, ${web1}, 'dpkg', 'nginx', 'amd64', '1.22.1', ${at(5)})`;
    await sql`insert into inventory_changes (time, tenant_id, agent_id, item_type, item, change, old_value, new_value) values
      (${at(5)}, ${tenant}, ${web1}, 'package', 'dpkg:openssl:amd64', 'upgraded', '3.0.1', '3.0.2'),
      (${at(4)}, ${tenant}, ${web1}, 'port', 'tcp/0.0.0.0:8080', 'added', null, 'java')`;
  });

  test("logs: full-text search, minimum level, source and time window, newest first", async () => {
    const all = await get(`/api/v1/agents/${web1}/logs?from=-2h`);
    expect(all.body.pagination.total).toBe(4);
    expect(all.body.data[0].level).toBe("critical");
    const search = await get(
      `/api/v1/agents/${web1}/logs?from=-2d&q=${encodeURIComponent('"failed password"')}`,
    );
    expect(search.body.data.map((l: { message: string }) => l.message)).toEqual([
      "Failed password for root from 203.0.113.9",
      "Failed password for admin (old)",
    ]);
    const lvl = await get(`/api/v1/agents/${web1}/logs?from=-2h&level=error`);
    expect(lvl.body.data.map((l: { level: string }) => l.level)).toEqual(["critical", "error"]);
    const src = await get(`/api/v1/agents/${web1}/logs?from=-2h&source=sshd&limit=1`);
    expect(src.body.data).toHaveLength(1);
    expect(src.body.pagination).toEqual({ limit: 1, offset: 0, total: 2 });
    const evil = await get(`/api/v1/agents/${web1}/logs?q=${encodeURIComponent("') or 1=1 --")}`);
    expect(evil.status).toBe(200);
    expect((await get(`/api/v1/agents/${web1}/logs`, otherToken)).status).toBe(404);
  });

  test("target results: newest first, filter failures", async () => {
    const r = await get(`/api/v1/targets/${target}/results?from=-3h&success=false`);
    expect(r.status).toBe(200);
    expect(r.body.pagination.total).toBe(10);
    expect(r.body.data.every((x: { error_message: string }) => x.error_message === "timeout")).toBe(true);
    expect((await get(`/api/v1/targets/${target}/results`, otherToken)).status).toBe(404);
  });

  test("inventory: hosts with a package at a version, an agent's inventory and its changes", async () => {
    const r = await get("/api/v1/inventory/packages?name=openssl&version=3.0.2");
    expect(r.body.data.map((p: { agent_name: string }) => p.agent_name)).toEqual(["db-1", "web-1"]);
    const prefix = await get("/api/v1/inventory/packages?q=ssl&version_prefix=3.0.1");
    expect(prefix.body.data.map((p: { version: string }) => p.version)).toEqual(["3.0.11"]);
    const inv = await get(`/api/v1/agents/${web1}/inventory`);
    expect(inv.body.host.os_name).toBe("debian");
    expect(inv.body.packages.map((p: { name: string }) => p.name)).toEqual(["nginx", "openssl"]);
    expect((await get(`/api/v1/agents/${web2}/inventory`)).status).toBe(404);
    const ch = await get(`/api/v1/agents/${web1}/inventory/changes?item_type=package`);
    expect(ch.body.data).toEqual([
      expect.objectContaining({
        item: "dpkg:openssl:amd64",
        change: "upgraded",
        old_value: "3.0.1",
        new_value: "3.0.2",
      }),
    ]);
    expect((await get("/api/v1/inventory/packages?name=openssl", otherToken)).body.data).toEqual([]);
  });

  test("a page past the end: no rows, and the real total (as every other list), not 0", async () => {
    const cases: [string, number][] = [
      [`/api/v1/agents/${web1}/logs?from=-2h`, 4],
      [`/api/v1/targets/${target}/results?from=-3h&success=false`, 10],
      ["/api/v1/inventory/packages?name=openssl&version=3.0.2", 2],
      [`/api/v1/agents/${web1}/inventory/changes?item_type=package`, 1],
    ];
    for (const [path, total] of cases) {
      const r = await get(`${path}&offset=500&limit=5`);
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ data: [], pagination: { limit: 5, offset: 500, total } });
    }
  });
});

describe("availability reports", () => {
  test("targets: from hourly rollups where complete and raw results for the rest, as JSON and CSV", async () => {
    const sql = h.deps.sql;
    await sql`update targets set name = '=HYPERLINK("x")' where id = ${target}`;
    const json = await get("/api/v1/reports/availability/targets?from=-3h");
    expect(json.body.data[0]).toMatchObject({
      target_id: target,
      checks: 100,
      successes: 90,
      availability_percent: 90,
    });
    // roll up the complete hours, then drop their raw rows: the report must not change
    const hourEnd = new Date(Math.floor(now / 3600_000) * 3600_000);
    await sql`select secumon_refresh_rollup('scan_results_1h', ${new Date(now - 5 * 3600_000)}, ${hourEnd})`;
    await sql`insert into rollup_progress (name, done_until) values ('scan_results_1h', ${hourEnd})
              on conflict (name) do update set done_until = excluded.done_until`;
    await sql`delete from scan_results where target_id = ${target} and time < ${hourEnd} and time >= ${new Date(now - 3 * 3600_000)}`;
    const again = await get("/api/v1/reports/availability/targets?from=-3h");
    expect(again.body.data[0]).toMatchObject({ checks: 100, successes: 90, availability_percent: 90 });

    const csv = await h.call("GET", "/api/v1/reports/availability/targets?from=-3h&format=csv", { token });
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toContain("text/csv");
    expect(csv.headers.get("content-disposition")).toContain("attachment");
    const lines = (csv.body as string).trim().split("\r\n");
    expect(lines[0]).toBe("target_id,name,address,type,checks,successes,availability_percent,latency_ms_avg");
    expect(lines[1]).toStartWith(`${target},"'=HYPERLINK(""x"")",https://x.test,http,100,90,90,`);
    const accept = await h.call("GET", "/api/v1/reports/availability/targets?from=-3h", {
      token,
      headers: { accept: "text/csv" },
    });
    expect(accept.headers.get("content-type")).toContain("text/csv");
  });

  test("agents: share of 5-minute intervals with metrics", async () => {
    const sql = h.deps.sql;
    const gap = await sql`select id from agents where name = 'web-2'`;
    await sql`delete from system_metrics where agent_id = ${gap[0]?.id} and time >= ${new Date(now - 3600_000)}`;
    const r = await get("/api/v1/reports/availability/agents?from=-2h&to=now");
    const by = Object.fromEntries(r.body.data.map((a: { name: string }) => [a.name, a]));
    expect(by["web-1"]).toMatchObject({
      intervals_expected: 24,
      intervals_with_data: 24,
      availability_percent: 100,
    });
    expect(by["web-2"]).toMatchObject({
      intervals_expected: 24,
      intervals_with_data: 12,
      availability_percent: 50,
    });
    const bad = await get("/api/v1/reports/availability/agents?format=xml");
    expect(bad.status).toBe(422);
  });
});
