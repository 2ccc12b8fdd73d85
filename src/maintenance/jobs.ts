/**
 * The maintenance jobs, as plain functions of (sql, settings, now) so tests drive them with any clock:
 *   ensurePartitions  — partitions from the oldest retained day to `aheadDays` ahead (plain mode);
 *   applyRetention    — drops partitions/chunks past each table's retention, prunes the dedup ledger after
 *                       the stream's max age plus a day, and inventory history after the 1 h retention;
 *   refreshRollups    — recomputes, for each rollup, the complete buckets since its watermark plus a lookback
 *                       for late samples (1 h for 5 m, 3 h for 1 h, as the seed's continuous aggregates), in
 *                       slices of at most a day, then moves the watermark. Idempotent: a crash mid-way only
 *                       means the next run recomputes the same buckets.
 * DDL runs as the schema owner; the rollup upserts as secumon_admin (the rollup tables force RLS).
 */
import { type Sql, withAdmin } from "../storage/db.ts";

export interface RetentionSettings {
  rawMs: number;
  rollup5mMs: number;
  rollup1hMs: number;
  logsMs: number;
  /** How long the dedup ledger keeps a batch: the stream's max age plus a margin. */
  dedupMs: number;
}

const DAY = 86_400_000;

function retentionOf(r: RetentionSettings, kind: string): number {
  switch (kind) {
    case "raw":
      return r.rawMs;
    case "rollup_5m":
      return r.rollup5mMs;
    case "rollup_1h":
      return r.rollup1hMs;
    case "logs":
      return r.logsMs;
    default:
      return r.dedupMs;
  }
}

async function tables(sql: Sql): Promise<{ name: string; retention: string }[]> {
  return sql<
    { name: string; retention: string }[]
  >`select name, retention from telemetry_tables order by name`;
}

/**
 * Partitions from yesterday to `aheadDays` ahead for every table (older days are created when data for them
 * arrives: by ingestion for raw tables, by the rollup job for rollups). Returns the number created.
 */
export async function ensurePartitions(sql: Sql, now: number, aheadDays = 3): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select coalesce(sum(secumon_ensure_partitions(name, ${new Date(now - DAY)}, ${new Date(now + aheadDays * DAY)})), 0)::int as n
    from telemetry_tables`;
  return row?.n ?? 0;
}

/** Returns the partitions dropped (names) and the number of ledger/history rows deleted. */
export async function applyRetention(
  sql: Sql,
  r: RetentionSettings,
  now: number,
): Promise<{ dropped: string[]; inventoryChanges: number }> {
  const dropped: string[] = [];
  for (const t of await tables(sql)) {
    const cutoff = new Date(now - retentionOf(r, t.retention));
    const rows = await sql<{ name: string }[]>`select secumon_drop_before(${t.name}, ${cutoff}) as name`;
    for (const x of rows) if (x.name) dropped.push(x.name);
  }
  const res = await withAdmin(
    sql,
    (tx) => tx`delete from inventory_changes where time < ${new Date(now - r.rollup1hMs)}`,
  );
  return { dropped, inventoryChanges: res.count };
}

export const ROLLUPS = [
  "system_metrics_5m",
  "disk_metrics_5m",
  "network_metrics_5m",
  "scan_results_5m",
  "system_metrics_1h",
  "disk_metrics_1h",
  "network_metrics_1h",
  "scan_results_1h",
] as const;

const floorTo = (t: number, step: number) => Math.floor(t / step) * step;

/** Start of the oldest partition of a raw table (plain mode), else null: where a first refresh begins. */
async function oldestPartition(sql: Sql, raw: string): Promise<number | null> {
  const [row] = await sql<{ d: Date | null }[]>`
    select min(to_date(right(c.relname, 8), 'YYYYMMDD'))::timestamp at time zone 'UTC' as d
    from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = ${raw}::regclass and c.relname ~ ${`^${raw}_p[0-9]{8}$`}`;
  return row?.d ? row.d.getTime() : null;
}

/** Refreshes every rollup up to the last complete bucket; returns buckets written per rollup. */
export async function refreshRollups(
  sql: Sql,
  r: RetentionSettings,
  now: number,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const progress = new Map(
    (await sql<{ name: string; done_until: Date }[]>`select name, done_until from rollup_progress`).map(
      (p) => [p.name, p.done_until.getTime()],
    ),
  );
  for (const name of ROLLUPS) {
    const step = name.endsWith("_5m") ? 300_000 : 3_600_000;
    const lookback = name.endsWith("_5m") ? 3_600_000 : 3 * 3_600_000;
    const to = floorTo(now, step);
    const done = progress.get(name);
    const raw = name.replace(/_(5m|1h)$/, "");
    const first = done === undefined ? ((await oldestPartition(sql, raw)) ?? now - r.rawMs) : 0;
    let from = floorTo(done === undefined ? first : Math.min(done, to) - lookback, step);
    from = Math.max(from, floorTo(now - r.rawMs, step));
    let written = 0;
    while (from < to) {
      const end = Math.min(to, from + DAY);
      await sql`select secumon_ensure_partitions(${name}, ${new Date(from)}, ${new Date(end - 1)})`;
      written += await withAdmin(sql, async (tx) => {
        const [row] = await tx<{ n: string }[]>`
          select secumon_refresh_rollup(${name}, ${new Date(from)}, ${new Date(end)}) as n`;
        await tx`
          insert into rollup_progress (name, done_until) values (${name}, ${new Date(end)})
          on conflict (name) do update set done_until = excluded.done_until, updated_at = now()`;
        return Number(row?.n ?? 0);
      });
      from = end;
    }
    out[name] = written;
  }
  return out;
}
