/** An in-memory query port: series with samples, and an entity inventory. For unit tests and fixtures. */

import { SOURCES } from "../rules/metrics.ts";
import type { Source } from "../rules/types.ts";
import { getOrSet } from "../util.ts";
import {
  addSample,
  type Entity,
  emptyEntities,
  type QueryPort,
  type RangeRequest,
  type SeriesStats,
  type Stats,
  type TenantEntities,
} from "./query.ts";

export interface MemorySeries {
  tenantId: string;
  source: Source;
  field: string;
  labels: Record<string, string>;
  /** [unix ms, value], any order. */
  samples: [number, number][];
}

export class MemoryQueryPort implements QueryPort {
  readonly series: MemorySeries[] = [];
  private readonly ents = new Map<string, TenantEntities>();
  /** Number of range() calls (tests check batching). */
  calls = 0;

  add(s: MemorySeries): MemorySeries {
    const want = SOURCES[s.source].seriesLabels;
    const labels: Record<string, string> = {};
    for (const l of want) labels[l] = s.labels[l] ?? "";
    const existing = this.series.find(
      (x) =>
        x.tenantId === s.tenantId &&
        x.source === s.source &&
        x.field === s.field &&
        sameLabels(x.labels, labels),
    );
    if (existing) {
      existing.samples.push(...s.samples);
      return existing;
    }
    const series = { ...s, labels };
    this.series.push(series);
    return series;
  }

  entity(tenantId: string, kind: "agents" | "probes" | "targets", e: Entity): void {
    getOrSet(this.ents, tenantId, emptyEntities)[kind].set(e.id, e);
  }

  assign(tenantId: string, targetId: string, probeId: string): void {
    getOrSet(this.ents, tenantId, emptyEntities).targetProbes.push([targetId, probeId]);
  }

  async range(requests: RangeRequest[]): Promise<SeriesStats[][]> {
    this.calls++;
    return requests.map((r) => {
      const out: SeriesStats[] = [];
      for (const s of this.series) {
        if (s.source !== r.source || !r.fields.includes(s.field) || !r.tenantIds.includes(s.tenantId))
          continue;
        let st: Stats | null = null;
        for (const [t, v] of s.samples)
          if (t > r.from && t <= r.to && Number.isFinite(v)) st = addSample(st, t, v);
        if (st) out.push({ tenantId: s.tenantId, labels: s.labels, field: s.field, stats: st });
      }
      return out;
    });
  }

  async entities(tenantIds: string[]): Promise<Map<string, TenantEntities>> {
    return new Map(tenantIds.map((t) => [t, this.ents.get(t) ?? emptyEntities()]));
  }
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
