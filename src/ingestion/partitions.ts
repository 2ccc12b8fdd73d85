/**
 * Ingestion creates the partitions its accepted time window needs (from the oldest retained day to two days
 * ahead; for the ledger, from yesterday) at start and hourly, so it never depends on the maintenance role
 * running in the same process: a row outside every partition would fail its whole transaction. A no-op in
 * timescale mode and for partitions that exist. Runs as the schema owner (DDL).
 */
import type { Sql } from "../storage/db.ts";

export async function ensureWindowPartitions(
  sql: Sql,
  retention: { rawMs: number; logsMs: number },
  now = Date.now(),
): Promise<number> {
  const to = new Date(now + 2 * 86_400_000);
  const raw = new Date(now - retention.rawMs);
  const logs = new Date(now - retention.logsMs);
  const dedup = new Date(now - 86_400_000);
  const rows = await sql<{ n: number }[]>`
    select coalesce(sum(secumon_ensure_partitions(name,
      case retention when 'raw' then ${raw}::timestamptz when 'logs' then ${logs}::timestamptz else ${dedup}::timestamptz end,
      ${to})), 0)::int as n
    from telemetry_tables where retention in ('raw', 'logs', 'dedup')`;
  return rows[0]?.n ?? 0;
}
