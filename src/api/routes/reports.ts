/**
 * Availability reports over a period, as JSON or CSV (`format=csv`, or `Accept: text/csv`):
 *   /reports/availability/targets  per target: checks, successes, availability % and mean latency, from the
 *                                  hourly scan-result rollups where complete, raw results for the rest
 *   /reports/availability/agents   per agent: share of 5-minute intervals with metrics, counted from when the
 *                                  agent was created (or the period's start) until the period's end (or now)
 */
import { Elysia, t } from "elysia";
import type { Tx } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { inTenant } from "../lib/tx.ts";
import { parseRange, type Range } from "../telemetry/range.ts";

const HOUR = 3_600_000;
const FIVE_MIN = 300_000;
const ORIGIN = "timestamptz '2000-01-01 00:00:00+00'";

/** Whole rollup buckets inside the range and before done_until; the rest is read raw. */
async function rollupWindow(tx: Tx, table: string, r: Range, width: number): Promise<{ lo: Date; hi: Date }> {
  const [p] = await tx`select done_until from rollup_progress where name = ${table}`;
  const done = (p?.done_until as Date | undefined)?.getTime() ?? 0;
  const lo = Math.ceil(r.from.getTime() / width) * width;
  const hi = Math.min(Math.floor(r.to.getTime() / width) * width, Math.floor(done / width) * width);
  return hi > lo ? { lo: new Date(lo), hi: new Date(hi) } : { lo: r.from, hi: r.from };
}

export function csv(rows: Record<string, unknown>[], columns: string[]): string {
  const cell = (v: unknown) => {
    if (v === null || v === undefined) return "";
    let s = v instanceof Date ? v.toISOString() : String(v);
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`; // no formulas when opened in a spreadsheet
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return `${[columns.join(","), ...rows.map((r) => columns.map((c) => cell(r[c])).join(","))].join("\r\n")}\r\n`;
}

const TARGET_COLS = [
  "target_id",
  "name",
  "address",
  "type",
  "checks",
  "successes",
  "availability_percent",
  "latency_ms_avg",
];
const AGENT_COLS = [
  "agent_id",
  "name",
  "hostname",
  "status",
  "intervals_expected",
  "intervals_with_data",
  "availability_percent",
];

export function reportRoutes(deps: ApiDeps) {
  const respond = (
    rows: Record<string, unknown>[],
    columns: string[],
    range: Range,
    name: string,
    wantCsv: boolean,
  ) => {
    if (!wantCsv) return { from: range.from.toISOString(), to: range.to.toISOString(), data: rows };
    const file = `${name}-${range.from.toISOString().slice(0, 10)}-${range.to.toISOString().slice(0, 10)}.csv`;
    return new Response(csv(rows, columns), {
      headers: {
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": `attachment; filename="${file}"`,
      },
    });
  };
  const wantsCsv = (q: { format?: string }, request: Request) =>
    q.format === "csv" ||
    (q.format === undefined && /\btext\/csv\b/.test(request.headers.get("accept") ?? ""));
  const Query = t.Object({
    from: t.Optional(t.String({ maxLength: 40, description: "default -30d" })),
    to: t.Optional(t.String({ maxLength: 40 })),
    format: t.Optional(t.Union([t.Literal("json"), t.Literal("csv")])),
  });

  return new Elysia({ name: "api/reports", prefix: "/api/v1/reports/availability" })
    .use(guardPlugin(deps))
    .get(
      "/targets",
      async ({ query, req, request }) => {
        const range = parseRange(query, deps.now(), "-30d");
        const rows = await inTenant(deps, req, async (tx) => {
          const w = await rollupWindow(tx, "scan_results_1h", range, HOUR);
          return tx`
            with parts as (
              select target_id, sum(checks)::float8 as c, sum(successes)::float8 as s,
                     sum(latency_ms_avg * checks) as lat_s, sum(case when latency_ms_avg is not null then checks end)::float8 as lat_n
              from scan_results_1h
              where tenant_id = ${req.tenantId} and bucket >= ${w.lo} and bucket < ${w.hi}
              group by 1
              union all
              select target_id, count(*)::float8, (count(*) filter (where success))::float8, sum(latency_ms),
                     count(latency_ms)::float8
              from scan_results
              where tenant_id = ${req.tenantId} and time >= ${range.from} and time < ${range.to}
                and (time < ${w.lo} or time >= ${w.hi})
              group by 1
            )
            select tg.id as target_id, tg.name, tg.address, tg.type, coalesce(sum(p.c), 0)::int as checks,
                   coalesce(sum(p.s), 0)::int as successes,
                   round((100 * sum(p.s) / nullif(sum(p.c), 0))::numeric, 3)::float8 as availability_percent,
                   round((sum(p.lat_s) / nullif(sum(p.lat_n), 0))::numeric, 3)::float8 as latency_ms_avg
            from targets tg left join parts p on p.target_id = tg.id
            group by tg.id order by tg.name, tg.id`;
        });
        return respond(rows, TARGET_COLS, range, "availability-targets", wantsCsv(query, request));
      },
      {
        auth: "viewer",
        query: Query,
        detail: { summary: "Availability of every target over a period (JSON or CSV)", tags: ["reports"] },
      },
    )
    .get(
      "/agents",
      async ({ query, req, request }) => {
        const range = parseRange(query, deps.now(), "-30d");
        const now = new Date(deps.now());
        const rows = await inTenant(deps, req, async (tx) => {
          const w = await rollupWindow(tx, "system_metrics_5m", range, FIVE_MIN);
          return tx`
            with b as (
              select agent_id, bucket as t from system_metrics_5m
              where tenant_id = ${req.tenantId} and bucket >= ${w.lo} and bucket < ${w.hi} and samples > 0
              union
              select agent_id, date_bin('5 minutes', time, ${tx.unsafe(ORIGIN)}) from system_metrics
              where tenant_id = ${req.tenantId} and time >= ${range.from} and time < ${range.to}
                and (time < ${w.lo} or time >= ${w.hi})
            ),
            counts as (select agent_id, count(*)::int as n from b group by 1)
            select a.id as agent_id, a.name, a.hostname, a.status,
                   greatest(0, ceil(extract(epoch from (least(${range.to}::timestamptz, ${now}::timestamptz)
                                                        - greatest(${range.from}::timestamptz, date_bin('5 minutes', a.created_at, ${tx.unsafe(ORIGIN)})))) / 300))::int
                     as intervals_expected,
                   coalesce(c.n, 0) as intervals_with_data
            from agents a left join counts c on c.agent_id = a.id
            order by a.name, a.id`;
        });
        const data = rows.map((r) => {
          const exp = r.intervals_expected as number;
          const got = Math.min(r.intervals_with_data as number, exp);
          return {
            ...r,
            intervals_with_data: got,
            availability_percent: exp > 0 ? Math.round((100_000 * got) / exp) / 1000 : null,
          };
        });
        return respond(data, AGENT_COLS, range, "availability-agents", wantsCsv(query, request));
      },
      {
        auth: "viewer",
        query: Query,
        detail: {
          summary: "Availability of every agent (metrics received) over a period (JSON or CSV)",
          tags: ["reports"],
        },
      },
    );
}
