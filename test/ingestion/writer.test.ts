/**
 * The table writers against a real PostgreSQL: COPY of every telemetry table, the dedup ledger (a batch is
 * written once however often it is offered, also by two writers at once), RLS on what was written.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import type { Sql } from "postgres";
import { withTenant } from "../../src/storage/db.ts";
import { logRows, metricsRows, scanRows, snmpRows, TableLines } from "../../src/telemetry/rows.ts";
import { RejectTally } from "../../src/telemetry/validate.ts";
import { type WriteBatch, writeBatches } from "../../src/telemetry/writer.ts";
import { migratedSql } from "../support/pg.ts";
import { type Fixture, seed } from "./fixtures.ts";

let sql: Sql;
let f: Fixture;
const now = Date.now();
const window = { minMs: now - 86_400_000, maxMs: now + 300_000 };

beforeAll(async () => {
  ({ sql } = await migratedSql());
  f = await seed(sql);
}, 60_000);

function metricsBatch(n: number, batchId = crypto.randomUUID()): WriteBatch {
  const tally = new RejectTally();
  const lines = metricsRows(
    {
      system: Array.from({ length: n }, (_, i) => ({
        time_unix_ms: now - i * 1000,
        cpu_usage: 12.5,
        mem_total: 8 * 2 ** 30,
        mem_used: 2 ** 30,
        load_avg_1: 0.5,
        extra: { "temp\tc": 41 },
      })),
      disks: [{ time_unix_ms: now, device: "sda1", mountpoint: "/", used_bytes: 10, usage_percent: 50 }],
      networks: [{ time_unix_ms: now, interface: "eth0", rx_bytes: 2 ** 40, tx_bytes: 5 }],
    },
    { tenantId: f.tenant, sourceId: f.agent },
    window,
    tally,
  );
  return { sourceId: f.agent, batchId, kind: "metrics", tenantId: f.tenant, lines };
}

const count = async (table: string, where = sql`true`) =>
  (await sql<{ n: number }[]>`select count(*)::int as n from ${sql(table)} where ${where}`)[0]!.n;

describe("writeBatches", () => {
  test("writes every table's rows and the ledger in one go; a second offer of the same batch writes nothing", async () => {
    const b = metricsBatch(3);
    const first = await writeBatches(sql, [b]);
    expect(first.written.size).toBe(1);
    expect(Object.fromEntries(first.rowsByTable)).toEqual({
      system_metrics: 3,
      disk_metrics: 1,
      network_metrics: 1,
    });
    const again = await writeBatches(sql, [b, b]);
    expect(again.written.size).toBe(0);
    expect(again.duplicates).toBe(2);
    expect(await count("system_metrics", sql`agent_id = ${f.agent}`)).toBe(3);
    const [row] = await sql`select extra, mem_total from system_metrics where agent_id = ${f.agent} limit 1`;
    expect(row!.extra).toEqual({ "temp\tc": 41 });
    expect(row!.mem_total).toBe(String(8 * 2 ** 30));
    const [net] = await sql`select rx_bytes from network_metrics where agent_id = ${f.agent}`;
    expect(net!.rx_bytes).toBe(String(2 ** 40));
    const [led] = await sql`select kind, rows, tenant_id from ingested_batches where batch_id = ${b.batchId}`;
    expect(led).toMatchObject({ kind: "metrics", rows: 5, tenant_id: f.tenant });
  });

  test("metrics rows (binary COPY): every column comes back as sent, absent values as NULL", async () => {
    const agent = f.agent;
    const t = now - 1234.567; // sub-millisecond part dropped, as in the text format
    const tally = new RejectTally();
    const lines = metricsRows(
      {
        system: [
          {
            time_unix_ms: t,
            cpu_usage: 99.999999999,
            cpu_user: 0,
            cpu_system: 1e-9,
            load_avg_1: 123456.789,
            mem_total: 2 ** 53 - 1,
            mem_used: 0,
            extra: { 'é"q': -0.5 },
          },
          { time_unix_ms: t, cpu_usage: 101 }, // out of range: dropped, the rows around it kept
          { time_unix_ms: t + 1 },
        ],
        disks: [{ time_unix_ms: t, device: "nvme0n1\tp1 é\u0000", mountpoint: "", total_bytes: 5 }],
        networks: [{ time_unix_ms: t, interface: "wlan0\\x", rx_errors: 7 }],
      },
      { tenantId: f.tenant, sourceId: agent },
      window,
      tally,
    );
    expect(lines.rows).toBe(4);
    expect([...tally.entries()]).toEqual([{ table: "system_metrics", reason: "out_of_range", count: 1 }]);
    const batchId = crypto.randomUUID();
    await writeBatches(sql, [{ sourceId: agent, batchId, kind: "metrics", tenantId: f.tenant, lines }]);
    const sys = await sql`
      select time, tenant_id, cpu_usage, cpu_user, cpu_system, cpu_iowait, load_avg_1, mem_total, mem_used,
             swap_used, extra
      from system_metrics where agent_id = ${agent} and time >= ${new Date(Math.floor(t))}
        and time <= ${new Date(Math.floor(t) + 1)} order by time`;
    expect(sys).toHaveLength(2);
    expect(sys[0]).toEqual({
      time: new Date(Math.floor(t)),
      tenant_id: f.tenant,
      cpu_usage: 99.999999999,
      cpu_user: 0,
      cpu_system: 1e-9,
      cpu_iowait: null,
      load_avg_1: 123456.789,
      mem_total: String(2 ** 53 - 1),
      mem_used: "0",
      swap_used: null,
      extra: { 'é"q': -0.5 },
    });
    expect(sys[1]).toMatchObject({ time: new Date(Math.floor(t) + 1), cpu_usage: null, extra: {} });
    const [disk] = await sql`select device, mountpoint, total_bytes, used_bytes from disk_metrics
      where agent_id = ${agent} and time = ${new Date(Math.floor(t))}`;
    expect(disk).toEqual({ device: "nvme0n1\tp1 é", mountpoint: null, total_bytes: "5", used_bytes: null });
    const [net] = await sql`select interface, rx_errors, tx_errors from network_metrics
      where agent_id = ${agent} and time = ${new Date(Math.floor(t))}`;
    expect(net).toEqual({ interface: "wlan0\\x", rx_errors: "7", tx_errors: null });
  });

  test("two writers offered the same batches at once: each batch is written exactly once", async () => {
    const batches = Array.from({ length: 20 }, () => metricsBatch(2));
    const before = await count("system_metrics");
    const results = await Promise.all([
      writeBatches(sql, batches),
      writeBatches(sql, [...batches].reverse()),
      writeBatches(sql, batches.slice(5, 15)),
    ]);
    expect(results.reduce((n, r) => n + r.written.size, 0)).toBe(20);
    expect((await count("system_metrics")) - before).toBe(40);
  });

  test("logs, scan results and SNMP samples; text with tabs, newlines, backslashes and NUL survives", async () => {
    const tally = new RejectTally();
    const src = { tenantId: f.tenant, sourceId: f.agent };
    const probe = { tenantId: f.tenant, sourceId: f.probe };
    const isTarget = (t: string, id: string) => t === f.tenant && id === f.target;
    const msg = "line\twith\\tabs\nand newline\r and NUL\u0000 é";
    const logs = logRows(
      {
        entries: [{ time_unix_ms: now, level: 5, source: "journald", message: msg, fields: { unit: "ssh" } }],
      },
      src,
      window,
      tally,
      16_384,
    );
    const scans = scanRows(
      {
        results: [
          {
            time_unix_ms: now,
            target_id: f.target,
            test_type: "http",
            success: true,
            latency_ms: 12,
            result_json: '{"status":200}',
          },
          { time_unix_ms: now, target_id: f.otherTarget, test_type: "http", success: true },
        ],
      },
      probe,
      window,
      tally,
      isTarget,
    );
    const snmp = snmpRows(
      {
        samples: [
          {
            time_unix_ms: now,
            target_id: f.target.toUpperCase(),
            oid: "1.3.6.1.2.1.1.3.0",
            value_type: "timeticks",
            value_numeric: 42,
          },
        ],
      },
      probe,
      window,
      tally,
      isTarget,
    );
    expect([...tally.entries()]).toEqual([{ table: "scan_results", reason: "unknown_target", count: 1 }]);
    await writeBatches(sql, [
      { sourceId: f.agent, batchId: "logs-1", kind: "logs", tenantId: f.tenant, lines: logs },
      { sourceId: f.probe, batchId: "scan-1", kind: "scans", tenantId: f.tenant, lines: scans },
      { sourceId: f.probe, batchId: "snmp-1", kind: "snmp", tenantId: f.tenant, lines: snmp },
    ]);
    const [log] = await sql`select level, source, message, fields from logs where agent_id = ${f.agent}`;
    expect(log).toEqual({
      level: "error",
      source: "journald",
      message: msg.replace("\u0000", ""),
      fields: { unit: "ssh" },
    });
    const found = await sql`select count(*)::int as n from logs
      where to_tsvector('simple', message) @@ websearch_to_tsquery('simple', 'newline') and tenant_id = ${f.tenant}`;
    expect(found[0]!.n).toBe(1);
    const [scan] =
      await sql`select target_id, success, latency_ms, result_data from scan_results where probe_id = ${f.probe}`;
    expect(scan).toEqual({
      target_id: f.target,
      success: true,
      latency_ms: 12,
      result_data: { status: 200 },
    });
    const [s] =
      await sql`select target_id, value_numeric, value_string from snmp_metrics where probe_id = ${f.probe}`;
    expect(s).toEqual({ target_id: f.target, value_numeric: 42, value_string: null });
  });

  test("what was written is visible to its tenant only (RLS, read as secumon_app)", async () => {
    const mine = await withTenant(sql, f.tenant, (tx) => tx`select count(*)::int as n from system_metrics`);
    const theirs = await withTenant(
      sql,
      f.otherTenant,
      (tx) => tx`select count(*)::int as n from system_metrics`,
    );
    expect(mine[0]!.n).toBeGreaterThan(0);
    expect(theirs[0]!.n).toBe(0);
  });

  test("a failing COPY rolls the whole group back, ledger included", async () => {
    const bad = new TableLines();
    bad.add(
      "system_metrics",
      `not-a-time\t${f.tenant}\t${f.agent}\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t{}\n`,
    );
    const good = metricsBatch(1);
    const err = await writeBatches(sql, [good, { ...good, batchId: "bad-1", lines: bad }]).catch((e) => e);
    expect(String(err)).toMatch(/refused the rows copied into system_metrics/);
    expect(await count("ingested_batches", sql`batch_id in (${good.batchId}, 'bad-1')`)).toBe(0);
  });
});
