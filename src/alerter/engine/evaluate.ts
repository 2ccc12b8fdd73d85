/**
 * Evaluates rules at one instant: plans the range queries every condition needs, fetches them in a few
 * batched calls through the query port, then computes each rule's active series. Deterministic given `now`
 * and the port's answers.
 */

import { matchesAll } from "../rules/matchers.ts";
import { SOURCES } from "../rules/metrics.ts";
import type { Condition, Rule, Scope, Source } from "../rules/types.ts";
import { getOrSet } from "../util.ts";
import { aggregate, compare, meanStd } from "./aggregate.ts";
import {
  emptyEntities,
  type QueryPort,
  type RangeRequest,
  type SeriesStats,
  type TenantEntities,
} from "./query.ts";

/** One active series of a rule. */
export interface SeriesResult {
  /** Identifying labels of the series (agent_id, device, …). */
  labels: Record<string, string>;
  value: number;
  threshold: number;
}

export interface EvaluationResult {
  /** rule id → fingerprint → active series. */
  active: Map<string, Map<string, SeriesResult>>;
  entities: Map<string, TenantEntities>;
  /** Rules that could not be evaluated, with the reason. */
  failed: Map<string, string>;
}

/** Canonical, readable identity of a label set: `agent_id="…",device="sda"`. */
export function fingerprint(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(",");
}

class Plan {
  private readonly reqs = new Map<string, { req: RangeRequest; fields: Set<string>; tenants: Set<string> }>();

  need(source: Source, field: string, from: number, to: number, tenantId: string): string {
    const key = `${source}|${from}|${to}`;
    let r = this.reqs.get(key);
    if (!r) {
      r = { req: { source, fields: [], from, to, tenantIds: [] }, fields: new Set(), tenants: new Set() };
      this.reqs.set(key, r);
    }
    r.fields.add(field);
    r.tenants.add(tenantId);
    return key;
  }

  requests(): { keys: string[]; requests: RangeRequest[] } {
    const keys = [...this.reqs.keys()];
    const requests = keys.map((k) => {
      const r = this.reqs.get(k)!;
      return { ...r.req, fields: [...r.fields].sort(), tenantIds: [...r.tenants].sort() };
    });
    return { keys, requests };
  }
}

/** key → tenant → field → series. */
type DataIndex = Map<string, Map<string, Map<string, SeriesStats[]>>>;

function indexAnswers(keys: string[], answers: SeriesStats[][]): DataIndex {
  const idx: DataIndex = new Map();
  keys.forEach((k, i) => {
    const byTenant = new Map<string, Map<string, SeriesStats[]>>();
    for (const s of answers[i] ?? []) {
      const byField = getOrSet(byTenant, s.tenantId, () => new Map<string, SeriesStats[]>());
      getOrSet(byField, s.field, () => [] as SeriesStats[]).push(s);
    }
    idx.set(k, byTenant);
  });
  return idx;
}

/** The ranges a condition reads, relative to now. */
function ranges(c: Condition, now: number): { current: [number, number]; previous?: [number, number] } {
  switch (c.type) {
    case "threshold":
      return { current: [now - c.windowMs, now] };
    case "change":
      return {
        current: [now - c.windowMs, now],
        previous: [now - c.offsetMs - c.windowMs, now - c.offsetMs],
      };
    case "anomaly":
      return { current: [now - c.windowMs, now], previous: [now - c.baselineMs, now - c.windowMs] };
    case "absent":
      return { current: [now - c.absentForMs, now] };
  }
}

export async function evaluateRules(
  rules: readonly Rule[],
  now: number,
  port: QueryPort,
): Promise<EvaluationResult> {
  const plan = new Plan();
  const keysOf = new Map<Condition, { current: string; previous?: string }>();
  for (const rule of rules) {
    for (const c of rule.conditions) {
      const r = ranges(c, now);
      const current = plan.need(c.metric.source, c.metric.field, r.current[0], r.current[1], rule.tenantId);
      const previous = r.previous
        ? plan.need(c.metric.source, c.metric.field, r.previous[0], r.previous[1], rule.tenantId)
        : undefined;
      keysOf.set(c, previous ? { current, previous } : { current });
    }
  }
  const { keys, requests } = plan.requests();
  const tenants = [...new Set(rules.map((r) => r.tenantId))];
  const [answers, entities] = await Promise.all([port.range(requests), port.entities(tenants)]);
  const data = indexAnswers(keys, answers);

  const active = new Map<string, Map<string, SeriesResult>>();
  const failed = new Map<string, string>();
  for (const rule of rules) {
    try {
      const ents = entities.get(rule.tenantId) ?? emptyEntities();
      const perCondition = rule.conditions.map((c) =>
        evaluateCondition(c, rule, keysOf.get(c)!, data, ents, now),
      );
      active.set(rule.id, combine(rule.match, perCondition));
    } catch (e) {
      failed.set(rule.id, (e as Error).message);
    }
  }
  return { active, entities, failed };
}

function seriesOf(data: DataIndex, key: string, tenantId: string, field: string): SeriesStats[] {
  return data.get(key)?.get(tenantId)?.get(field) ?? [];
}

/** Entities a series belongs to (by its id labels), looked up in the tenant's inventory. */
function inScope(labels: Record<string, string>, scope: Scope, ents: TenantEntities): boolean {
  const idLists: [string, string[], Map<string, { tags: string[] }>][] = [
    ["agent_id", scope.agents, ents.agents],
    ["probe_id", scope.probes, ents.probes],
    ["target_id", scope.targets, ents.targets],
  ];
  const anyIds = idLists.some(([, ids]) => ids.length > 0);
  if (
    anyIds &&
    !idLists.some(
      ([label, ids]) =>
        ids.length > 0 && labels[label] !== undefined && ids.includes(labels[label] as string),
    )
  )
    return false;
  if (scope.tags.length > 0) {
    const tagged = idLists.some(([label, , map]) => {
      const id = labels[label];
      const e = id === undefined ? undefined : map.get(id);
      return e?.tags.some((t) => scope.tags.includes(t)) === true;
    });
    if (!tagged) return false;
  }
  return true;
}

function evaluateCondition(
  c: Condition,
  rule: Rule,
  keys: { current: string; previous?: string },
  data: DataIndex,
  ents: TenantEntities,
  now: number,
): Map<string, SeriesResult> {
  const out = new Map<string, SeriesResult>();
  const current = seriesOf(data, keys.current, rule.tenantId, c.metric.field).filter(
    (s) => matchesAll(c.metric.matchers, s.labels) && inScope(s.labels, rule.scope, ents),
  );
  if (c.type === "absent") return absent(c, rule, current, ents, now);

  let previous: Map<string, SeriesStats> | null = null;
  if (keys.previous) {
    previous = new Map();
    for (const s of seriesOf(data, keys.previous, rule.tenantId, c.metric.field))
      previous.set(fingerprint(s.labels), s);
  }
  for (const s of current) {
    const v = aggregate(s.stats, c.aggregation);
    if (v === null) continue;
    const fp = fingerprint(s.labels);
    let value = v;
    if (c.type === "change") {
      const p = aggregate(previous?.get(fp)?.stats, c.aggregation);
      if (p === null) continue;
      if (c.mode === "percent") {
        if (p === 0) continue; // no meaningful percentage from zero
        value = (100 * (v - p)) / Math.abs(p);
      } else value = v - p;
    } else if (c.type === "anomaly") {
      const base = previous?.get(fp)?.stats;
      const ms = meanStd(base);
      if (!ms || !base || base.firstT > now - c.minHistoryMs) continue; // not enough history yet
      value =
        ms.std === 0
          ? v === ms.mean
            ? 0
            : v > ms.mean
              ? Number.POSITIVE_INFINITY
              : Number.NEGATIVE_INFINITY
          : (v - ms.mean) / ms.std;
    }
    if (compare(c.operator, value, c.threshold))
      out.set(fp, { labels: s.labels, value, threshold: c.threshold });
  }
  return out;
}

/** Expected entities with no sample of the metric in (now − absent_for, now]. */
function absent(
  c: Condition,
  rule: Rule,
  present: SeriesStats[],
  ents: TenantEntities,
  now: number,
): Map<string, SeriesResult> {
  const out = new Map<string, SeriesResult>();
  const cutoff = now - c.absentForMs;
  const usable = (e: { createdAt: number; status: string }) =>
    e.createdAt <= cutoff && e.status !== "disabled" && e.status !== "revoked";
  const seen = new Set<string>();
  const entity = SOURCES[c.metric.source].entity;
  const idOf = (l: Record<string, string>) =>
    entity === "agent"
      ? (l.agent_id ?? "")
      : entity === "target"
        ? (l.target_id ?? "")
        : `${l.probe_id}/${l.target_id}`;
  for (const s of present) if (s.stats.n > 0) seen.add(idOf(s.labels));
  const expected: Record<string, string>[] = [];
  if (entity === "agent")
    for (const a of ents.agents.values()) usable(a) && expected.push({ agent_id: a.id });
  else if (entity === "target")
    for (const t of ents.targets.values()) usable(t) && expected.push({ target_id: t.id });
  else
    for (const [t, p] of ents.targetProbes) {
      const te = ents.targets.get(t);
      const pe = ents.probes.get(p);
      if (te && pe && usable(te) && usable(pe)) expected.push({ probe_id: p, target_id: t });
    }
  for (const labels of expected) {
    if (seen.has(idOf(labels)) || !inScope(labels, rule.scope, ents)) continue;
    out.set(fingerprint(labels), { labels, value: c.absentForMs / 1000, threshold: c.absentForMs / 1000 });
  }
  return out;
}

/** all: natural join on common labels (value of the first condition); any: union. */
function combine(match: "all" | "any", parts: Map<string, SeriesResult>[]): Map<string, SeriesResult> {
  if (parts.length === 1) return parts[0] as Map<string, SeriesResult>;
  if (match === "any") {
    const out = new Map<string, SeriesResult>();
    for (const p of parts) for (const [fp, r] of p) if (!out.has(fp)) out.set(fp, r);
    return out;
  }
  let acc = [...(parts[0] as Map<string, SeriesResult>).values()];
  for (const p of parts.slice(1)) {
    const right = [...p.values()];
    if (acc.length === 0 || right.length === 0) return new Map();
    const common = Object.keys(acc[0]!.labels).filter((k) => k in right[0]!.labels);
    const keyOf = (l: Record<string, string>) => common.map((k) => l[k]).join("\u0000");
    const byKey = new Map<string, SeriesResult[]>();
    for (const r of right) {
      const k = keyOf(r.labels);
      const l = byKey.get(k);
      if (l) l.push(r);
      else byKey.set(k, [r]);
    }
    const next: SeriesResult[] = [];
    for (const a of acc)
      for (const b of byKey.get(keyOf(a.labels)) ?? [])
        next.push({ ...a, labels: { ...b.labels, ...a.labels } });
    acc = next;
  }
  return new Map(acc.map((r) => [fingerprint(r.labels), r]));
}
