/**
 * The dedup ledger `ingested_batches` (migrations/020_telemetry.sql): a batch's rows and its ledger row are
 * written in one transaction, so "recorded" means "stored". Before writing, the writer claims its batches:
 *   1. a transaction-level advisory lock per (source, batch), taken in a fixed order (no deadlock between two
 *      writers claiming overlapping sets), so a second writer holding the same batch waits for the first to
 *      commit or roll back;
 *   2. then, in a new statement (so its snapshot sees whatever the first writer committed), insert the
 *      batches not yet recorded, returning them: only those are written.
 * Both statements are sent together (pipelined): one round trip.
 */
import type { Tx } from "../storage/db.ts";

export interface LedgerEntry {
  sourceId: string;
  batchId: string;
  kind: string;
  tenantId: string;
  rows: number;
}

export const ledgerKey = (sourceId: string, batchId: string): string => `${sourceId}:${batchId}`;

/** Records the entries not yet in the ledger; returns the keys (ledgerKey) of those it recorded. */
export async function claimBatches(tx: Tx, entries: LedgerEntry[]): Promise<Set<string>> {
  if (entries.length === 0) return new Set();
  const src = entries.map((e) => e.sourceId);
  const bid = entries.map((e) => e.batchId);
  const lock = tx`
    select count(pg_advisory_xact_lock(k)) from (
      select distinct hashtextextended(s || ':' || b, 0) as k
      from unnest(${src}::text[], ${bid}::text[]) as x (s, b) order by 1
    ) q`;
  const insert = tx<{ source_id: string; batch_id: string }[]>`
    insert into ingested_batches (source_id, batch_id, kind, tenant_id, rows)
    select x.s::uuid, x.b, x.k, x.t::uuid, x.r::int
    from unnest(${src}::text[], ${bid}::text[], ${entries.map((e) => e.kind)}::text[],
                ${entries.map((e) => e.tenantId)}::text[], ${entries.map((e) => String(e.rows))}::text[]) as x (s, b, k, t, r)
    where not exists (
      select 1 from ingested_batches i where i.source_id = x.s::uuid and i.batch_id = x.b
    )
    returning source_id, batch_id`;
  const [, rows] = await Promise.all([lock, insert]);
  return new Set(rows.map((r) => ledgerKey(r.source_id, r.batch_id)));
}
