/**
 * Writes a group of decoded batches in ONE transaction, as secumon_admin (the telemetry tables force RLS, and
 * PostgreSQL refuses COPY FROM into a table whose RLS applies to the writer): claim the batches in the
 * ledger, COPY the rows of the fresh ones table by table, apply inventory snapshots. A batch already in the
 * ledger (a redelivery) is skipped. Nothing is written unless everything is.
 */
import type { InventoryPayload } from "../protocol/index.ts";
import { type Sql, withAdmin } from "../storage/db.ts";
import { copyBinary, copyLines } from "./copy.ts";
import { applyInventory } from "./inventory.ts";
import { claimBatches, ledgerKey } from "./ledger.ts";
import { COLUMNS, type CopyTable, type TableLines } from "./rows.ts";

export interface WriteBatch {
  sourceId: string;
  batchId: string;
  kind: string;
  tenantId: string;
  lines: TableLines;
  inventory?: { timeMs: number; payload: InventoryPayload };
}

export interface WriteResult {
  /** Keys (ledgerKey) of batches written now. */
  written: Set<string>;
  /** Batches skipped because the ledger already had them. */
  duplicates: number;
  rowsByTable: Map<string, number>;
}

export async function writeBatches(sql: Sql, batches: WriteBatch[]): Promise<WriteResult> {
  // the same batch twice in one group (a redelivery fetched next to its original) is written once
  const unique = new Map<string, WriteBatch>();
  for (const b of batches) unique.set(ledgerKey(b.sourceId, b.batchId), b);
  const list = [...unique.values()];
  return withAdmin(sql, async (tx) => {
    const fresh = await claimBatches(
      tx,
      list.map((b) => ({
        sourceId: b.sourceId,
        batchId: b.batchId,
        kind: b.kind,
        tenantId: b.tenantId,
        rows: b.lines.rows + (b.inventory ? 1 : 0),
      })),
    );
    const byTable = new Map<CopyTable, string[]>();
    const binByTable = new Map<CopyTable, { chunks: Uint8Array[]; rows: number }>();
    const inventories: WriteBatch[] = [];
    for (const b of list) {
      if (!fresh.has(ledgerKey(b.sourceId, b.batchId))) continue;
      for (const [table, lines] of b.lines.lines) {
        const acc = byTable.get(table);
        if (acc) for (const l of lines) acc.push(l);
        else byTable.set(table, lines.slice());
      }
      for (const [table, rows] of b.lines.binary) {
        if (rows.rows === 0) continue;
        const acc = binByTable.get(table) ?? { chunks: [], rows: 0 };
        acc.chunks.push(rows.bytes());
        acc.rows += rows.rows;
        binByTable.set(table, acc);
      }
      if (b.inventory) inventories.push(b);
    }
    // one COPY per table and format for the whole group
    const rowsByTable = new Map<string, number>();
    for (const [table, lines] of byTable) {
      await copyLines(tx, table, COLUMNS[table], lines);
      rowsByTable.set(table, lines.length);
    }
    for (const [table, { chunks, rows }] of binByTable) {
      await copyBinary(tx, table, COLUMNS[table], chunks);
      rowsByTable.set(table, (rowsByTable.get(table) ?? 0) + rows);
    }
    inventories.sort((a, b) => (a.inventory?.timeMs ?? 0) - (b.inventory?.timeMs ?? 0));
    for (const b of inventories) {
      if (!b.inventory) continue;
      await applyInventory(tx, b.tenantId, b.sourceId, b.inventory.timeMs, b.inventory.payload);
      rowsByTable.set("inventory_hosts", (rowsByTable.get("inventory_hosts") ?? 0) + 1);
    }
    return {
      written: fresh,
      duplicates: list.length - fresh.size + (batches.length - list.length),
      rowsByTable,
    };
  });
}
