/**
 * One evaluation cycle, pure: given the rules, their active series (evaluate.ts), the leader's cached
 * instances, silences and `now`, advance every instance and decide what to notify. Returns what the store
 * must write in one transaction (instances, history, outbox) and what to publish afterwards.
 *
 * Notification policy (per instance, then grouped per rule × channel × kind into one message):
 *   - firing: once per episode to the rule's channels, as soon as it is not silenced (a silence that ends
 *     while the alert still fires lets the notification through then);
 *   - repeat: every repeat interval (rule's, else the configured cooldown) while firing, unacknowledged and
 *     not silenced, to every channel notified so far;
 *   - escalation: when unacknowledged `after` the firing time of a step, that step's channels;
 *   - resolved: to every channel notified, when the firing notification went out.
 * Acknowledgement stops repeats and escalation for the rest of the episode.
 */

import { createHash } from "node:crypto";
import { matchesAll } from "../rules/matchers.ts";
import type { LabelMatcher, Rule } from "../rules/types.ts";
import { getOrSet } from "../util.ts";
import type { EvaluationResult } from "./evaluate.ts";
import type { TenantEntities } from "./query.ts";
import { type Instance, maybeFire, restart, step, type Transition } from "./state.ts";

/** Resolved instances are kept this long (shown as resolved), then forgotten. */
export const RESOLVED_RETENTION_MS = 15 * 60_000;

export interface Silence {
  id: string;
  tenantId: string;
  kind: "silence" | "maintenance";
  matchers: LabelMatcher[];
  startsAt: number;
  endsAt: number;
}

export type NotificationKind = "firing" | "resolved" | "repeat" | "escalation";

export interface AlertSummary {
  instance_id: string;
  history_id: string | null;
  fingerprint: string;
  labels: Record<string, string>;
  value: number | null;
  threshold: number | null;
  state: string;
  fired_at: string | null;
  resolved_at: string | null;
}

export interface NotificationPayload {
  kind: NotificationKind;
  status: "firing" | "resolved";
  tenant_id: string;
  rule: { id: string; name: string; severity: string; type: string };
  annotations: Record<string, string>;
  alerts: AlertSummary[];
  escalation_level: number;
  created_at: string;
}

export interface OutboxItem {
  tenantId: string;
  channelId: string;
  ruleId: string;
  kind: NotificationKind;
  idempotencyKey: string;
  payload: NotificationPayload;
}

export type HistoryOp =
  | {
      op: "fire";
      id: string;
      tenantId: string;
      ruleId: string;
      agentId: string | null;
      probeId: string | null;
      targetId: string | null;
      severity: string;
      message: string;
      value: number | null;
      threshold: number | null;
      firedAt: number;
      labels: Record<string, string>;
      annotations: Record<string, string>;
    }
  | { op: "resolve"; id: string; tenantId: string; resolvedAt: number };

export interface AlertEvent {
  tenantId: string;
  ruleId: string;
  instanceId: string;
  fingerprint: string;
  state: Transition;
  labels: Record<string, string>;
  value: number | null;
  threshold: number | null;
  at: number;
}

export interface CycleInput {
  now: number;
  rules: readonly Rule[];
  evaluation: EvaluationResult;
  /** The leader's instances: rule id → fingerprint → instance. Updated in place. */
  instances: Map<string, Map<string, Instance>>;
  silences: readonly Silence[];
  cooldownMs: number;
  newId: () => string;
}

export interface CycleOutput {
  upserts: Instance[];
  /** Instances forgotten (resolved long ago, or their rule is gone or disabled). */
  removed: Instance[];
  /** Instances whose episode starts again: their acknowledgement is cleared. */
  resetAck: Set<string>;
  history: HistoryOp[];
  outbox: OutboxItem[];
  events: AlertEvent[];
}

export function runCycle(input: CycleInput): CycleOutput {
  const { now, rules, evaluation, instances, silences } = input;
  const out: CycleOutput = {
    upserts: [],
    removed: [],
    resetAck: new Set(),
    history: [],
    outbox: [],
    events: [],
  };
  const liveRules = new Set(rules.map((r) => r.id));
  for (const [ruleId, byFp] of instances) {
    if (liveRules.has(ruleId)) continue;
    for (const inst of byFp.values()) {
      if (inst.state === "firing" && inst.historyId)
        out.history.push({ op: "resolve", id: inst.historyId, tenantId: inst.tenantId, resolvedAt: now });
      out.removed.push(inst);
    }
    instances.delete(ruleId);
  }
  const activeSilences = silences.filter((s) => s.startsAt <= now && now < s.endsAt);

  for (const rule of rules) {
    if (evaluation.failed.has(rule.id)) continue; // keep state as it is until the rule evaluates again
    const active = evaluation.active.get(rule.id) ?? new Map();
    const byFp = getOrSet(instances, rule.id, () => new Map<string, Instance>());
    const ents = evaluation.entities.get(rule.tenantId);
    const opts = { forMs: rule.forMs, keepFiringForMs: rule.keepFiringForMs };
    const groups = new Map<
      string,
      { kind: NotificationKind; channel: string; insts: Instance[]; seq: string[] }
    >();
    const queue = (kind: NotificationKind, channels: readonly string[], inst: Instance, seq: string) => {
      for (const channel of channels) {
        const k = `${kind}|${channel}`;
        const g = getOrSet(groups, k, () => ({
          kind,
          channel,
          insts: [] as Instance[],
          seq: [] as string[],
        }));
        g.insts.push(inst);
        g.seq.push(`${inst.historyId}:${seq}`);
      }
    };

    for (const [fp, inst] of [...byFp]) {
      const prevState = inst.state;
      const t = step(inst, active.get(fp) ?? null, now, opts);
      if (t === "inactive") {
        byFp.delete(fp);
        out.removed.push(inst);
        out.events.push(event(inst, t, now));
        continue;
      }
      if (
        inst.state === "resolved" &&
        t === "none" &&
        inst.resolvedAt !== null &&
        now - inst.resolvedAt >= RESOLVED_RETENTION_MS
      ) {
        byFp.delete(fp);
        out.removed.push(inst);
        continue;
      }
      if (t === "pending" || (t === "firing" && prevState === "resolved")) out.resetAck.add(inst.id);
      afterTransition(inst, t, false);
    }

    for (const [fp, series] of active) {
      if (byFp.has(fp)) continue;
      const inst: Instance = {
        id: input.newId(),
        tenantId: rule.tenantId,
        ruleId: rule.id,
        fingerprint: fp,
        labels: instanceLabels(rule, series.labels, ents),
        state: "pending",
        activeAt: now,
        firedAt: null,
        resolvedAt: null,
        keepFiringSince: null,
        value: series.value,
        threshold: series.threshold,
        historyId: null,
        notified: false,
        lastSentAt: null,
        repeatCount: 0,
        escalationLevel: 0,
        acknowledgedAt: null,
        acknowledgedBy: null,
      };
      restart(inst, now);
      byFp.set(fp, inst);
      const t: Transition = maybeFire(inst, now, opts) ? "firing" : "pending";
      afterTransition(inst, t, true);
    }
    function afterTransition(inst: Instance, t: Transition, created: boolean) {
      let changed = created || t !== "none";
      if (t === "firing") {
        inst.historyId = input.newId();
        out.history.push({
          op: "fire",
          id: inst.historyId,
          tenantId: inst.tenantId,
          ruleId: rule.id,
          agentId: known(inst.labels.agent_id, ents?.agents),
          probeId: known(inst.labels.probe_id, ents?.probes),
          targetId: known(inst.labels.target_id, ents?.targets),
          severity: rule.severity,
          message: summaryLine(rule, inst),
          value: inst.value,
          threshold: inst.threshold,
          firedAt: now,
          labels: inst.labels,
          annotations: rule.annotations,
        });
      }
      if (t === "resolved" && inst.historyId) {
        out.history.push({ op: "resolve", id: inst.historyId, tenantId: inst.tenantId, resolvedAt: now });
        if (inst.notified) queue("resolved", notifiedChannels(rule, inst), inst, "resolved");
      }
      if (t !== "none") out.events.push(event(inst, t, now));

      if (inst.state === "firing") {
        const silenced = activeSilences.some(
          (s) => s.tenantId === inst.tenantId && matchesAll(s.matchers, inst.labels),
        );
        if (!inst.notified) {
          if (!silenced && rule.channels.length + rule.escalations.length > 0) {
            queue("firing", rule.channels, inst, "firing");
            inst.notified = true;
            inst.lastSentAt = now;
            changed = true;
          }
        } else if (inst.acknowledgedAt === null && !silenced) {
          const firedAt = inst.firedAt ?? now;
          const due = rule.escalations.filter(
            (e) => e.level > inst.escalationLevel && now - firedAt >= e.afterMs,
          );
          if (due.length > 0) {
            for (const e of due) queue("escalation", e.channels, inst, `escalation:${e.level}`);
            inst.escalationLevel = Math.max(...due.map((e) => e.level));
            inst.lastSentAt = now;
            changed = true;
          } else {
            const repeatMs = rule.repeatMs ?? input.cooldownMs;
            if (repeatMs > 0 && inst.lastSentAt !== null && now - inst.lastSentAt >= repeatMs) {
              inst.repeatCount++;
              queue("repeat", notifiedChannels(rule, inst), inst, `repeat:${inst.repeatCount}`);
              inst.lastSentAt = now;
              changed = true;
            }
          }
        }
      }
      if (changed) out.upserts.push(inst);
    }

    for (const g of groups.values()) {
      const insts = g.insts;
      out.outbox.push({
        tenantId: rule.tenantId,
        channelId: g.channel,
        ruleId: rule.id,
        kind: g.kind,
        idempotencyKey: `${g.kind}:${rule.id}:${g.channel}:${hash(g.seq.sort().join("|"))}`,
        payload: {
          kind: g.kind,
          status: g.kind === "resolved" ? "resolved" : "firing",
          tenant_id: rule.tenantId,
          rule: { id: rule.id, name: rule.name, severity: rule.severity, type: rule.type },
          annotations: rule.annotations,
          alerts: insts.map(summary),
          escalation_level: Math.max(...insts.map((i) => i.escalationLevel)),
          created_at: new Date(now).toISOString(),
        },
      });
    }
  }
  return out;
}

/** Level-0 channels plus those of every escalation step reached this episode. */
function notifiedChannels(rule: Rule, inst: Instance): string[] {
  const set = new Set(rule.channels);
  for (const e of rule.escalations)
    if (e.level <= inst.escalationLevel) for (const c of e.channels) set.add(c);
  return [...set];
}

function known(id: string | undefined, map: Map<string, unknown> | undefined): string | null {
  return id !== undefined && map?.has(id) ? id : null;
}

export function instanceLabels(
  rule: Rule,
  series: Record<string, string>,
  ents: TenantEntities | undefined,
): Record<string, string> {
  const labels: Record<string, string> = { ...rule.labels, ...series };
  labels.alertname = rule.name;
  labels.severity = rule.severity;
  labels.rule_id = rule.id;
  const name = (id: string | undefined, m: Map<string, { name: string }> | undefined) =>
    id === undefined ? undefined : m?.get(id)?.name;
  const agent = name(series.agent_id, ents?.agents);
  const probe = name(series.probe_id, ents?.probes);
  const target = name(series.target_id, ents?.targets);
  if (agent) labels.agent = agent;
  if (probe) labels.probe = probe;
  if (target) labels.target = target;
  return labels;
}

function summary(i: Instance): AlertSummary {
  return {
    instance_id: i.id,
    history_id: i.historyId,
    fingerprint: i.fingerprint,
    labels: i.labels,
    value: i.value !== null && Number.isFinite(i.value) ? i.value : null,
    threshold: i.threshold,
    state: i.state,
    fired_at: i.firedAt === null ? null : new Date(i.firedAt).toISOString(),
    resolved_at: i.resolvedAt === null ? null : new Date(i.resolvedAt).toISOString(),
  };
}

/** One line for alert_history.message: rule name, where, value vs threshold. */
export function summaryLine(rule: Rule, i: Instance): string {
  const where = i.labels.agent ?? i.labels.target ?? i.labels.agent_id ?? i.labels.target_id ?? "";
  const c = rule.conditions[0];
  const v =
    i.value === null ? "" : ` ${c?.metric.text ?? ""} = ${fmt(i.value)} (threshold ${fmt(i.threshold)})`;
  return `${rule.name}${where ? ` on ${where}` : ""}:${v}`.replace(/:$/, "");
}

const fmt = (v: number | null) =>
  v === null ? "n/a" : Number.isFinite(v) ? String(Math.round(v * 1000) / 1000) : String(v);

function event(i: Instance, t: Transition, now: number): AlertEvent {
  return {
    tenantId: i.tenantId,
    ruleId: i.ruleId,
    instanceId: i.id,
    fingerprint: i.fingerprint,
    state: t,
    labels: i.labels,
    value: i.value,
    threshold: i.threshold,
    at: now,
  };
}

const hash = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 32);
