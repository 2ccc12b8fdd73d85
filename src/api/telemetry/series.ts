/**
 * Time series over the telemetry tables, at raw, 5-minute or hourly resolution. Rollup tables (021) hold
 * complete buckets up to rollup_progress.done_until; anything later (or everything, when the rollup job has
 * not run) is aggregated from the raw table on the fly, so a chart is never missing its last minutes. Both
 * parts produce partial aggregates (sum, count, min, max) per bucket and group, combined at the end:
 * averages over rollups are weighted by their sample counts.
 *
 * Metric names are an allow-list (METRICS); every SQL expression comes from it, every value is a parameter.
 */
import { type Sql, type TenantRead, type Tx, tenantQuery } from "../../storage/db.ts";
import type { Range, Resolution } from "./range.ts";

export type Family = "system" | "disk";
export type Aggregation = "avg" | "min" | "max" | "sum" | "count";
export const AGGREGATIONS: Aggregation[] = ["avg", "min", "max", "sum", "count"];

interface MetricDef {
  family: Family;
  raw: string;
  /** Rollup columns; absent: the metric is served from raw data at every resolution. */
  rollup?: { avg: string; min: string; max: string };
}

export const METRICS: Record<string, MetricDef> = {
  "system.cpu_usage": {
    family: "system",
    raw: "cpu_usage",
    rollup: { avg: "cpu_usage_avg", min: "cpu_usage_min", max: "cpu_usage_max" },
  },
  "system.cpu_user": { family: "system", raw: "cpu_user" },
  "system.cpu_system": { family: "system", raw: "cpu_system" },
  "system.cpu_iowait": { family: "system", raw: "cpu_iowait" },
  "system.mem_usage": {
    family: "system",
    raw: "(mem_used::float8 / nullif(mem_total, 0) * 100)",
    rollup: { avg: "mem_usage_avg", min: "mem_usage_avg", max: "mem_usage_max" },
  },
  "system.mem_used": { family: "system", raw: "mem_used::float8" },
  "system.load_avg_1": {
    family: "system",
    raw: "load_avg_1",
    rollup: { avg: "load_avg_1", min: "load_avg_1", max: "load_avg_1_max" },
  },
  "system.load_avg_5": { family: "system", raw: "load_avg_5" },
  "system.load_avg_15": { family: "system", raw: "load_avg_15" },
  "system.swap_used": {
    family: "system",
    raw: "swap_used::float8",
    rollup: { avg: "swap_used_max::float8", min: "swap_used_max::float8", max: "swap_used_max::float8" },
  },
  "disk.usage_percent": {
    family: "disk",
    raw: "usage_percent",
    rollup: { avg: "usage_percent_avg", min: "usage_percent_avg", max: "usage_percent_max" },
  },
  "disk.used_bytes": {
    family: "disk",
    raw: "used_bytes::float8",
    rollup: { avg: "used_bytes_avg", min: "used_bytes_avg", max: "used_bytes_avg" },
  },
};

const TABLES: Record<Family, { raw: string; "5m": string; "1h": string }> = {
  system: { raw: "system_metrics", "5m": "system_metrics_5m", "1h": "system_metrics_1h" },
  disk: { raw: "disk_metrics", "5m": "disk_metrics_5m", "1h": "disk_metrics_1h" },
};

/** How rows are grouped into series: one per agent, per agent tag, per disk device, or one in all. */
export type GroupBy = "none" | "agent" | "tag" | "device";

export interface SeriesRequest {
  metrics: string[];
  range: Range;
  resolution: Resolution;
  stepMs: number;
  tenantId: string;
  agentIds?: string[];
  tags?: string[];
  groupBy: GroupBy;
}

export interface Series {
  group: string;
  time: number[];
  /** Per metric and aggregation: `values["system.cpu_usage"].avg[i]` at time[i]. */
  values: Record<string, Record<Aggregation, (number | null)[]>>;
}

const ORIGIN = "timestamptz '2000-01-01 00:00:00+00'";
const ROLLUP_MS: Record<Resolution, number> = { raw: 0, "5m": 300_000, "1h": 3_600_000 };

/** Partial aggregates of one rollup row (no grouping needed). */
const rowCols = (defs: MetricDef[]) =>
  defs
    .map((d, i) => {
      const c = d.rollup as NonNullable<MetricDef["rollup"]>;
      return `${c.avg} * x.samples as s${i}, case when ${c.avg} is not null then x.samples end as n${i},
              ${c.min} as mn${i}, ${c.max} as mx${i}`;
    })
    .join(", ");

export async function querySeries(
  tx: Tx,
  r: SeriesRequest,
): Promise<{ resolution: Resolution; series: Series[] }> {
  const defs = r.metrics.map((m) => METRICS[m] as MetricDef);
  const family = defs[0]?.family ?? "system";
  // a metric without a rollup column is served from raw data for the whole request
  const res: Resolution = defs.every((d) => d.rollup) ? r.resolution : "raw";
  const tables = TABLES[family];
  const step = `${r.stepMs} milliseconds`;

  let done: Date | null = null;
  if (res !== "raw") {
    const [p] = await tx`select done_until from rollup_progress where name = ${tables[res]}`;
    done = (p?.done_until as Date | undefined) ?? null;
  }
  const rawFrom = done && done > r.range.from ? (done < r.range.to ? done : r.range.to) : r.range.from;

  const needsAgents = r.groupBy === "tag" || (r.tags?.length ?? 0) > 0;
  const group =
    r.groupBy === "agent"
      ? "x.agent_id::text"
      : r.groupBy === "tag"
        ? "tag"
        : r.groupBy === "device"
          ? family === "disk"
            ? "x.device"
            : "''"
          : "''";
  const joins = needsAgents
    ? `join agents a on a.id = x.agent_id${r.groupBy === "tag" ? " cross join lateral unnest(a.tags) tag" : ""}`
    : "";
  const filters = (timeCol: string, lo: Date, hi: Date) => {
    const parts = [
      tx`x.tenant_id = ${r.tenantId}`,
      tx`x.${tx.unsafe(timeCol)} >= ${lo}`,
      tx`x.${tx.unsafe(timeCol)} < ${hi}`,
    ];
    if (r.agentIds?.length)
      parts.push(
        r.agentIds.length === 1
          ? tx`x.agent_id = ${r.agentIds[0] as string}`
          : tx`x.agent_id = any(${r.agentIds}::uuid[])`,
      );
    if (r.tags?.length) parts.push(tx`a.tags && ${r.tags}::text[]`);
    return parts.reduce((acc, p, i) => (i === 0 ? tx`where ${p}` : tx`${acc} and ${p}`), tx``);
  };
  const rawCols = defs
    .map(
      (d, i) =>
        `sum(${d.raw}) as s${i}, count(${d.raw}) as n${i}, min(${d.raw}) as mn${i}, max(${d.raw}) as mx${i}`,
    )
    .join(", ");
  const rawPart = tx`
    select date_bin(${step}::interval, x.time, ${tx.unsafe(ORIGIN)}) as t, ${tx.unsafe(group)} as g, ${tx.unsafe(rawCols)}
    from ${tx(tables.raw)} x ${tx.unsafe(joins)} ${filters("time", rawFrom, r.range.to)}
    group by 1, 2`;
  let parts = rawPart;
  if (res !== "raw" && done && done > r.range.from) {
    const rollCols = defs
      .map((d, i) => {
        const c = d.rollup as NonNullable<MetricDef["rollup"]>;
        return `sum(${c.avg} * x.samples) as s${i}, sum(case when ${c.avg} is not null then x.samples end) as n${i},
                min(${c.min}) as mn${i}, max(${c.max}) as mx${i}`;
      })
      .join(", ");
    const hi = done < r.range.to ? done : r.range.to;
    // one rollup row per bucket and series already: read it as is (the common chart case)
    const asIs =
      r.stepMs === ROLLUP_MS[res] &&
      (r.groupBy === "agent" || (r.groupBy === "none" && r.agentIds?.length === 1));
    const rollup = asIs
      ? tx`
      select x.bucket as t, ${tx.unsafe(group)} as g, ${tx.unsafe(rowCols(defs))}
      from ${tx(tables[res])} x ${filters("bucket", r.range.from, hi)}`
      : tx`
      select date_bin(${step}::interval, x.bucket, ${tx.unsafe(ORIGIN)}) as t, ${tx.unsafe(group)} as g, ${tx.unsafe(rollCols)}
      from ${tx(tables[res])} x ${tx.unsafe(joins)} ${filters("bucket", r.range.from, hi)}
      group by 1, 2`;
    parts = tx`${rollup} union all ${rawPart}`;
  }
  const finalCols = defs
    .map(
      (_, i) =>
        `sum(s${i}) / nullif(sum(n${i}), 0) as avg${i}, min(mn${i}) as min${i}, max(mx${i}) as max${i},
         sum(s${i}) as sum${i}, sum(n${i})::float8 as count${i}`,
    )
    .join(", ");
  const result = await tx`
    select (extract(epoch from t) * 1000)::float8 as t, g, ${tx.unsafe(finalCols)}
    from (${parts}) p group by t, g order by g, t`;

  const bySeries = new Map<string, Series>();
  for (const row of result) {
    const g = String(row.g);
    let s = bySeries.get(g);
    if (!s) {
      s = { group: g, time: [], values: {} };
      for (const m of r.metrics) s.values[m] = { avg: [], min: [], max: [], sum: [], count: [] };
      bySeries.set(g, s);
    }
    s.time.push(row.t as number);
    r.metrics.forEach((m, i) => {
      const v = s.values[m] as Record<Aggregation, (number | null)[]>;
      for (const a of AGGREGATIONS) v[a].push(num(row[`${a}${i}`]));
    });
  }
  return { resolution: res, series: [...bySeries.values()] };
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export interface ChartRequest {
  /** Names from METRICS, all of one family ("system.cpu_usage"…). */
  metrics: string[];
  /** The keys of `columns` for each metric: avg as `key`, `key_min`, `key_max`. */
  keys: string[];
  range: Range;
  resolution: Resolution;
  stepMs: number;
  tenantId: string;
  agentId: string;
}

/**
 * rollup_progress.done_until as this process last read it, per pool: re-read at most every PROGRESS_TTL_MS.
 * Only a hint that lets PostgreSQL prune raw partitions before execution (queryChartJson); the statement
 * still reads the exact value itself.
 */
const PROGRESS_TTL_MS = 10_000;
const progressCache = new WeakMap<Sql, { at: number; value: Promise<Map<string, number>> }>();
function progressHint(sql: Sql): Promise<Map<string, number>> {
  const now = performance.now();
  const hit = progressCache.get(sql);
  if (hit && now - hit.at < PROGRESS_TTL_MS) return hit.value;
  const entry = {
    at: now,
    // rollup_progress holds no tenant data: read on the pool as the schema owner
    value: sql<{ name: string; done_until: Date }[]>`select name, done_until from rollup_progress`.then(
      (rows) => new Map(rows.map((p) => [p.name, p.done_until.getTime()])),
    ),
  };
  progressCache.set(sql, entry);
  entry.value.catch(() => {
    if (progressCache.get(sql) === entry) progressCache.delete(sql);
  });
  return entry.value;
}
/** How far behind its hint done_until may have moved (it only moves forward; this is slack, not a need). */
const HINT_SLACK_MS = 86_400_000;

/**
 * One agent's chart as the JSON text of its `columns` object (`{"time":[…],"cpu_usage":[…],"cpu_usage_min":[…],…}`),
 * built by PostgreSQL in one statement: no row objects, no per-point work in JavaScript (the API's one thread
 * is what a busy appliance runs out of first). The same numbers as querySeries for the buckets a chart uses:
 * rollup rows as they are when a bucket is one rollup row, raw data aggregated after rollup_progress.done_until.
 * Returns null when it cannot serve the request this way (a step wider than the rollup's: querySeries merges
 * partial buckets), and `found: false` when the agent is not the tenant's.
 *
 * Runs as its own read-only tenant transaction in one round trip (tenantQuery) with a generic plan: with
 * 30 daily partitions of raw and 5-minute data, planning the statement cost 20–40 ms against 2–10 ms of
 * execution, and a custom plan is re-planned on every call. A generic plan prunes partitions at executor
 * start-up only on plain parameters, so the raw part's lower bound is given twice: exactly, as a sub-select of
 * done_until, and as a parameter that is never later than it — this process's last reading of done_until
 * minus a day (or the range's start). Without that parameter every raw partition of the table would be
 * opened on every call (a 30-day chart: 3 times the cost).
 */
export async function queryChartJson(
  sql: Sql,
  r: ChartRequest,
  read: TenantRead = (fn, opts) => tenantQuery(sql, r.tenantId, fn, opts),
): Promise<{ found: boolean; resolution: Resolution; columns: string } | null> {
  const defs = r.metrics.map((m) => METRICS[m] as MetricDef);
  const family = defs[0]?.family ?? "system";
  const res: Resolution = defs.every((d) => d.rollup) ? r.resolution : "raw";
  if (res !== "raw" && r.stepMs !== ROLLUP_MS[res]) return null;
  if (res === "raw" && r.stepMs % BASE_RAW_MS !== 0) return null;
  const tables = TABLES[family];
  const { from, to } = r.range;
  let lowest = from;
  if (res !== "raw") {
    const hint = (await progressHint(sql)).get(tables[res]);
    if (hint !== undefined && hint - HINT_SLACK_MS > from.getTime())
      lowest = new Date(Math.min(hint - HINT_SLACK_MS, to.getTime()));
  }
  const rawCols = defs.map(
    (d, i) => `avg(${d.raw}) as a${i}, min(${d.raw}) as mn${i}, max(${d.raw}) as mx${i}`,
  );
  const json = [
    `'time', coalesce(array_to_json(array_agg((date_part('epoch', t) * 1000)::int8)), '[]')`,
    ...r.keys.map((k, i) =>
      [`a${i}`, `mn${i}`, `mx${i}`]
        .map((c, j) => `'${k}${["", "_min", "_max"][j]}', coalesce(array_to_json(array_agg(${c})), '[]')`)
        .join(", "),
    ),
  ].join(", ");
  const [row] = await read(
    (tx) => {
      // raw rows from where the rollup ends (its done_until, within the range), or the whole range
      const rawFrom =
        res === "raw"
          ? tx`${from}::timestamptz`
          : tx`(select greatest(${from}::timestamptz, least(${to}::timestamptz, coalesce(max(done_until), ${from}::timestamptz)))
                from rollup_progress where name = ${tables[res]})`;
      const rawPart = tx`
        select date_bin(${`${r.stepMs} milliseconds`}::interval, x.time, ${tx.unsafe(ORIGIN)}) as t, ${tx.unsafe(rawCols.join(", "))}
        from ${tx(tables.raw)} x
        where x.tenant_id = ${r.tenantId} and x.agent_id = ${r.agentId}
          and x.time >= ${lowest} and x.time >= ${rawFrom} and x.time < ${to}
        group by 1`;
      let rows = rawPart;
      if (res !== "raw") {
        const cols = defs.map((d, i) => {
          const c = d.rollup as NonNullable<MetricDef["rollup"]>;
          return `${c.avg} as a${i}, ${c.min} as mn${i}, ${c.max} as mx${i}`;
        });
        // complete buckets only: before done_until (no progress row: none, the raw part covers everything)
        rows = tx`
          select x.bucket as t, ${tx.unsafe(cols.join(", "))}
          from ${tx(tables[res])} x
          where x.tenant_id = ${r.tenantId} and x.agent_id = ${r.agentId} and x.bucket >= ${from} and x.bucket < ${to}
            and x.bucket < (select done_until from rollup_progress where name = ${tables[res]})
          union all ${rawPart}`;
      }
      // array_agg over the sorted subquery: one sort for every column (a plain aggregate reads its input in
      // order); array_to_json of a whole array costs less than json_agg's per-value calls
      return tx<{ found: boolean; columns: string }[]>`
        select exists (select 1 from agents where id = ${r.agentId}) as found,
               json_build_object(${tx.unsafe(json)})::text as columns
        from (select * from (${rows}) u order by t) p`;
    },
    { genericPlan: true },
  );
  return { found: row?.found === true, resolution: res, columns: String(row?.columns ?? "{}") };
}

const BASE_RAW_MS = 60_000;
