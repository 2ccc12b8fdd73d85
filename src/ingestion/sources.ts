/**
 * Which senders and targets exist, cached: every batch's source must be an agent (metrics, logs, inventory) or
 * a probe (scans, snmp) of the batch's tenant, and every scan/SNMP target a target of that tenant. Lookups are
 * batched per group and run as secumon_admin (the tables force RLS). Known ids are cached for a minute,
 * unknown ones for five seconds (an agent enrolled a moment ago is found on the next batch).
 */
import type { TelemetryKind } from "../bus/telemetry.ts";
import { type Sql, withAdmin } from "../storage/db.ts";

const POSITIVE_MS = 60_000;
const NEGATIVE_MS = 5_000;

export class KnownSources {
  private readonly seen = new Map<string, { ok: boolean; until: number }>();
  private readonly targets = new Map<string, { ids: Set<string>; until: number }>();

  constructor(
    private readonly sql: Sql,
    private readonly now: () => number = Date.now,
  ) {}

  /** Returns the subset of `pairs` (tenant, source) that exist for `kind`'s principal type. */
  async filterKnown(
    kind: TelemetryKind,
    pairs: { tenantId: string; sourceId: string }[],
  ): Promise<Set<string>> {
    const table = kind === "scans" || kind === "snmp" ? "probes" : "agents";
    const now = this.now();
    const known = new Set<string>();
    const ask = new Map<string, { tenantId: string; sourceId: string }>();
    for (const p of pairs) {
      const key = `${table}:${p.tenantId}:${p.sourceId}`;
      const c = this.seen.get(key);
      if (c && c.until > now) {
        if (c.ok) known.add(`${p.tenantId}:${p.sourceId}`);
      } else ask.set(key, p);
    }
    if (ask.size > 0) {
      const list = [...ask.values()];
      const found = await withAdmin(
        this.sql,
        (tx) =>
          tx<{ k: string }[]>`
          select t.tenant_id::text || ':' || t.id::text as k from ${tx(table)} t
          join unnest(${list.map((p) => p.tenantId)}::uuid[], ${list.map((p) => p.sourceId)}::uuid[]) as q (tenant_id, id)
            on t.tenant_id = q.tenant_id and t.id = q.id`,
      );
      const ok = new Set(found.map((r) => r.k));
      for (const [key, p] of ask) {
        const k = `${p.tenantId}:${p.sourceId}`;
        const isKnown = ok.has(k);
        this.seen.set(key, { ok: isKnown, until: now + (isKnown ? POSITIVE_MS : NEGATIVE_MS) });
        if (isKnown) known.add(k);
      }
      if (this.seen.size > 100_000) this.seen.clear();
    }
    return known;
  }

  /** Loads the target ids of these tenants (cached); then `isTarget` answers synchronously. */
  async loadTargets(tenantIds: Iterable<string>): Promise<void> {
    const now = this.now();
    const stale = [...new Set(tenantIds)].filter((t) => (this.targets.get(t)?.until ?? 0) <= now);
    if (stale.length === 0) return;
    const rows = await withAdmin(
      this.sql,
      (tx) =>
        tx<
          { tenant_id: string; id: string }[]
        >`select tenant_id, id from targets where tenant_id = any(${stale}::uuid[])`,
    );
    for (const t of stale) this.targets.set(t, { ids: new Set(), until: now + NEGATIVE_MS * 2 });
    for (const r of rows) this.targets.get(r.tenant_id)?.ids.add(r.id);
  }

  isTarget = (tenantId: string, targetId: string): boolean =>
    this.targets.get(tenantId)?.ids.has(targetId) ?? false;
}
