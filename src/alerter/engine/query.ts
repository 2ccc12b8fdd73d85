/**
 * The query port: everything the evaluator reads about telemetry, as plain data. Two implementations: the
 * Postgres one (store/pg-query.ts) and the in-memory one (engine/memory.ts, used by unit tests and fixtures).
 */
import type { Source } from "../rules/types.ts";

/** Summary of one series' samples of one field in a time range (from, to]. Times in Unix ms. */
export interface Stats {
  n: number;
  sum: number;
  sumSq: number;
  min: number;
  max: number;
  first: number;
  last: number;
  firstT: number;
  lastT: number;
}

export interface RangeRequest {
  source: Source;
  /** Fields (columns, or snmp oid names) wanted. */
  fields: string[];
  /** Exclusive. */
  from: number;
  /** Inclusive. */
  to: number;
  tenantIds: string[];
}

export interface SeriesStats {
  tenantId: string;
  /** The source's series labels (SOURCES[source].seriesLabels), all present. */
  labels: Record<string, string>;
  field: string;
  stats: Stats;
}

export interface Entity {
  id: string;
  name: string;
  tags: string[];
  /** Unix ms. */
  createdAt: number;
  /** agents/probes: online, offline, pending, disabled, revoked; targets: enabled/disabled. */
  status: string;
}

export interface TenantEntities {
  agents: Map<string, Entity>;
  probes: Map<string, Entity>;
  targets: Map<string, Entity>;
  /** [target_id, probe_id] assignments (scan series an absent rule expects). */
  targetProbes: [string, string][];
}

export interface QueryPort {
  /** One answer (list of series) per request, in order. */
  range(requests: RangeRequest[]): Promise<SeriesStats[][]>;
  entities(tenantIds: string[]): Promise<Map<string, TenantEntities>>;
}

export const emptyEntities = (): TenantEntities => ({
  agents: new Map(),
  probes: new Map(),
  targets: new Map(),
  targetProbes: [],
});

/** Folds one sample into stats (null = start new). */
export function addSample(s: Stats | null, t: number, v: number): Stats {
  if (!s) return { n: 1, sum: v, sumSq: v * v, min: v, max: v, first: v, last: v, firstT: t, lastT: t };
  s.n++;
  s.sum += v;
  s.sumSq += v * v;
  if (v < s.min) s.min = v;
  if (v > s.max) s.max = v;
  if (t < s.firstT) {
    s.firstT = t;
    s.first = v;
  }
  if (t >= s.lastT) {
    s.lastT = t;
    s.last = v;
  }
  return s;
}
