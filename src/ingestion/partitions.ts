/**
 * Partitions ingestion needs, so it never depends on the maintenance role running in the same process (a row
 * outside every partition would fail its whole transaction):
 *   - at start and hourly: yesterday to two days ahead for every raw table and the ledger;
 *   - before each write: the UTC days of the accepted samples that this process has not seen yet (late data
 *     from an agent's buffer, up to the raw retention) — remembered once ensured.
 * A no-op in timescale mode and for partitions that exist. Runs as the schema owner (DDL).
 */
import type { TelemetryKind } from "../bus/telemetry.ts";
import type { Sql } from "../storage/db.ts";

const DAY = 86_400_000;

export async function ensureWindowPartitions(sql: Sql, now = Date.now()): Promise<number> {
  const rows = await sql<{ n: number }[]>`
    select coalesce(sum(secumon_ensure_partitions(name, ${new Date(now - DAY)}, ${new Date(now + 2 * DAY)})), 0)::int as n
    from telemetry_tables where retention in ('raw', 'logs', 'dedup')`;
  return rows[0]?.n ?? 0;
}

export const TABLES_OF: Record<TelemetryKind, string[]> = {
  metrics: ["system_metrics", "disk_metrics", "network_metrics"],
  logs: ["logs"],
  scans: ["scan_results"],
  snmp: ["snmp_metrics"],
  inventory: [],
};

export class PartitionDays {
  private readonly known = new Set<string>();
  constructor(private readonly sql: Sql) {}

  async ensure(kind: TelemetryKind, days: Iterable<number>): Promise<void> {
    const missing = [...days].filter((d) => !this.known.has(`${kind}:${d}`));
    if (missing.length === 0 || TABLES_OF[kind].length === 0) return;
    for (const d of missing) {
      const at = new Date(d * DAY);
      await this
        .sql`select secumon_ensure_partitions(t, ${at}, ${at}) from unnest(${TABLES_OF[kind]}::text[]) t`;
      this.known.add(`${kind}:${d}`);
    }
    if (this.known.size > 10_000) this.known.clear();
  }
}
