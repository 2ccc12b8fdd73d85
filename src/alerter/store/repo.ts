/**
 * The alerter's tables (migrations/030_alerting.sql) as a small repository: load rules, instances, silences
 * and acknowledgements; write one cycle's outcome (instances, history, outbox) in the caller's transaction.
 * Every statement here runs inside withAdmin (the alerter works across tenants).
 */
import type { Logger } from "pino";
import type { Tx } from "../../storage/db.ts";
import type { CycleOutput, Silence } from "../engine/cycle.ts";
import type { Instance } from "../engine/state.ts";
import { checkMatcher } from "../rules/matchers.ts";
import type { EscalationStep, LabelMatcher, Rule, RuleType, Severity } from "../rules/types.ts";
import { compileConditions, type ValidationError } from "../rules/validate.ts";
import { getOrSet } from "../util.ts";

interface RuleRow {
  id: string;
  tenant_id: string;
  name: string;
  severity: Severity;
  type: RuleType;
  conditions: unknown;
  for_ms: number;
  keep_ms: number;
  repeat_ms: number | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  updated_at: Date;
  channels: string[];
  escalations: { level: number; after_ms: number; channel: string }[];
}

/** Rules that failed to compile, reported once per version. */
const reported = new Map<string, number>();

/** Enabled rules, compiled; a rule stored with invalid conditions is skipped and logged (once per change). */
export async function loadRules(tx: Tx, log: Logger): Promise<{ rules: Rule[]; invalid: number }> {
  const rows = await tx<RuleRow[]>`
    SELECT r.id::text, r.tenant_id::text, r.name, r.severity, r.type, r.conditions,
           (extract(epoch FROM r.for_duration) * 1000)::float8 AS for_ms,
           (extract(epoch FROM r.keep_firing_for) * 1000)::float8 AS keep_ms,
           (extract(epoch FROM r.repeat_interval) * 1000)::float8 AS repeat_ms,
           r.labels, r.annotations, r.updated_at,
           coalesce((SELECT array_agg(c.channel_id::text ORDER BY c.channel_id) FROM alert_rule_channels c
                      WHERE c.rule_id = r.id), '{}') AS channels,
           coalesce((SELECT json_agg(json_build_object('level', e.level, 'after_ms', extract(epoch FROM e.after) * 1000,
                                                       'channel', e.channel_id::text))
                       FROM alert_rule_escalations e WHERE e.rule_id = r.id), '[]') AS escalations
      FROM alert_rules r
     WHERE r.enabled
     ORDER BY r.tenant_id, r.id`;
  const rules: Rule[] = [];
  let invalid = 0;
  for (const r of rows) {
    const errors: ValidationError[] = [];
    const compiled = compileConditions(r.type, r.conditions, "/conditions", errors);
    if (!compiled) {
      invalid++;
      if (reported.get(r.id) !== r.updated_at.getTime()) {
        reported.set(r.id, r.updated_at.getTime());
        log.error(
          { rule_id: r.id, tenant_id: r.tenant_id, errors },
          `alert rule "${r.name}" has invalid conditions and is not evaluated: fix it through the API (which validates rules on write)`,
        );
      }
      continue;
    }
    const steps = new Map<number, EscalationStep>();
    for (const e of r.escalations) {
      const s = getOrSet(steps, e.level, () => ({
        level: e.level,
        afterMs: Number(e.after_ms),
        channels: [] as string[],
      }));
      s.afterMs = Math.min(s.afterMs, Number(e.after_ms));
      s.channels.push(e.channel);
    }
    rules.push({
      ...compiled,
      id: r.id,
      tenantId: r.tenant_id,
      name: r.name,
      severity: r.severity,
      type: r.type,
      forMs: Number(r.for_ms),
      keepFiringForMs: Number(r.keep_ms),
      repeatMs: r.repeat_ms === null ? null : Number(r.repeat_ms),
      labels: stringsOnly(r.labels),
      annotations: stringsOnly(r.annotations),
      channels: r.channels,
      escalations: [...steps.values()].sort((a, b) => a.level - b.level),
    });
  }
  return { rules, invalid };
}

function stringsOnly(o: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => typeof v === "string")) as Record<
    string,
    string
  >;
}

const ms = (col: string) => `(extract(epoch FROM ${col}) * 1000)::float8`;

interface InstanceRow {
  id: string;
  tenant_id: string;
  rule_id: string;
  fingerprint: string;
  labels: Record<string, string>;
  state: Instance["state"];
  active_at: number;
  fired_at: number | null;
  resolved_at: number | null;
  keep_firing_since: number | null;
  value: number | null;
  threshold: number | null;
  history_id: string | null;
  notified: boolean;
  last_sent_at: number | null;
  repeat_count: number;
  escalation_level: number;
  acknowledged_at: number | null;
  acknowledged_by: string | null;
}

/** Every instance, as the evaluator's cache (rule id → fingerprint → instance). */
export async function loadInstances(tx: Tx): Promise<Map<string, Map<string, Instance>>> {
  const rows = await tx.unsafe<InstanceRow[]>(`
    SELECT id::text, tenant_id::text, rule_id::text, fingerprint, labels, state, ${ms("active_at")} AS active_at,
           ${ms("fired_at")} AS fired_at, ${ms("resolved_at")} AS resolved_at, ${ms("keep_firing_since")} AS keep_firing_since,
           value, threshold, history_id::text, notified, ${ms("last_sent_at")} AS last_sent_at, repeat_count,
           escalation_level, ${ms("acknowledged_at")} AS acknowledged_at, acknowledged_by::text
      FROM alert_instances`);
  const out = new Map<string, Map<string, Instance>>();
  for (const r of rows) {
    getOrSet(out, r.rule_id, () => new Map<string, Instance>()).set(r.fingerprint, {
      id: r.id,
      tenantId: r.tenant_id,
      ruleId: r.rule_id,
      fingerprint: r.fingerprint,
      labels: r.labels,
      state: r.state,
      activeAt: r.active_at,
      firedAt: r.fired_at,
      resolvedAt: r.resolved_at,
      keepFiringSince: r.keep_firing_since,
      value: r.value,
      threshold: r.threshold,
      historyId: r.history_id,
      notified: r.notified,
      lastSentAt: r.last_sent_at,
      repeatCount: r.repeat_count,
      escalationLevel: r.escalation_level,
      acknowledgedAt: r.acknowledged_at,
      acknowledgedBy: r.acknowledged_by,
    });
  }
  return out;
}

/** Copies acknowledgements made since the cache was loaded (by the API) onto the cached instances. */
export async function mergeAcknowledgements(
  tx: Tx,
  cache: Map<string, Map<string, Instance>>,
): Promise<void> {
  const rows = await tx.unsafe<{ rule_id: string; fingerprint: string; at: number; by: string | null }[]>(`
    SELECT rule_id::text, fingerprint, ${ms("acknowledged_at")} AS at, acknowledged_by::text AS by
      FROM alert_instances WHERE state = 'firing' AND acknowledged_at IS NOT NULL`);
  for (const r of rows) {
    const inst = cache.get(r.rule_id)?.get(r.fingerprint);
    if (inst && inst.state === "firing") {
      inst.acknowledgedAt = r.at;
      inst.acknowledgedBy = r.by;
    }
  }
}

/** Silences and maintenance windows active at `now` (with unusable matchers logged and skipped). */
export async function loadSilences(tx: Tx, now: number, log: Logger): Promise<Silence[]> {
  const rows = await tx<
    { id: string; tenant_id: string; kind: Silence["kind"]; matchers: LabelMatcher[]; s: number; e: number }[]
  >`
    SELECT id::text, tenant_id::text, kind, matchers,
           (extract(epoch FROM starts_at) * 1000)::float8 AS s, (extract(epoch FROM ends_at) * 1000)::float8 AS e
      FROM alert_silences WHERE ends_at > ${new Date(now)} AND starts_at <= ${new Date(now)}`;
  const out: Silence[] = [];
  for (const r of rows) {
    try {
      out.push({
        id: r.id,
        tenantId: r.tenant_id,
        kind: r.kind,
        matchers: r.matchers.map(checkMatcher),
        startsAt: r.s,
        endsAt: r.e,
      });
    } catch (e) {
      log.error(
        { silence_id: r.id, err: (e as Error).message },
        "silence has an unusable matcher and is ignored: fix or delete it",
      );
    }
  }
  return out;
}

const instanceJson = (i: Instance) => ({
  id: i.id,
  tenant_id: i.tenantId,
  rule_id: i.ruleId,
  fingerprint: i.fingerprint,
  labels: i.labels,
  state: i.state,
  active_at: i.activeAt,
  fired_at: i.firedAt,
  resolved_at: i.resolvedAt,
  keep_firing_since: i.keepFiringSince,
  value: i.value !== null && Number.isFinite(i.value) ? i.value : null,
  threshold: i.threshold,
  history_id: i.historyId,
  notified: i.notified,
  last_sent_at: i.lastSentAt,
  repeat_count: i.repeatCount,
  escalation_level: i.escalationLevel,
});

const ts = (x: string) => `CASE WHEN x.${x} IS NULL THEN NULL ELSE to_timestamp(x.${x} / 1000.0) END`;

/** Writes one cycle's outcome; returns the number of outbox rows actually inserted. */
export async function persistCycle(tx: Tx, out: CycleOutput): Promise<number> {
  const removed = out.removed.map((i) => i.id);
  if (removed.length > 0) await tx`DELETE FROM alert_instances WHERE id = ANY(${removed}::uuid[])`;
  if (out.resetAck.size > 0) {
    await tx`UPDATE alert_instances SET acknowledged_at = NULL, acknowledged_by = NULL, ack_comment = NULL
              WHERE id = ANY(${[...out.resetAck]}::uuid[])`;
  }
  if (out.upserts.length > 0) {
    await tx.unsafe(
      `INSERT INTO alert_instances (id, tenant_id, rule_id, fingerprint, labels, state, active_at, fired_at, resolved_at,
         keep_firing_since, value, threshold, history_id, notified, last_sent_at, repeat_count, escalation_level, updated_at)
       SELECT x.id, x.tenant_id, x.rule_id, x.fingerprint, x.labels, x.state, ${ts("active_at")}, ${ts("fired_at")},
              ${ts("resolved_at")}, ${ts("keep_firing_since")}, x.value, x.threshold, x.history_id, x.notified,
              ${ts("last_sent_at")}, x.repeat_count, x.escalation_level, now()
         FROM jsonb_to_recordset($1::text::jsonb) AS x(id uuid, tenant_id uuid, rule_id uuid, fingerprint text, labels jsonb,
              state text, active_at float8, fired_at float8, resolved_at float8, keep_firing_since float8, value float8,
              threshold float8, history_id uuid, notified boolean, last_sent_at float8, repeat_count int, escalation_level smallint)
       ON CONFLICT (id) DO UPDATE SET labels = EXCLUDED.labels, state = EXCLUDED.state, active_at = EXCLUDED.active_at,
         fired_at = EXCLUDED.fired_at, resolved_at = EXCLUDED.resolved_at, keep_firing_since = EXCLUDED.keep_firing_since,
         value = EXCLUDED.value, threshold = EXCLUDED.threshold, history_id = EXCLUDED.history_id,
         notified = EXCLUDED.notified, last_sent_at = EXCLUDED.last_sent_at, repeat_count = EXCLUDED.repeat_count,
         escalation_level = EXCLUDED.escalation_level, updated_at = now()`,
      [JSON.stringify(out.upserts.map(instanceJson))] as never[],
    );
  }
  const fires = out.history.filter((h) => h.op === "fire");
  if (fires.length > 0) {
    await tx.unsafe(
      `INSERT INTO alert_history (id, tenant_id, rule_id, agent_id, probe_id, target_id, severity, status, message, value,
         threshold, fired_at, labels, annotations)
       SELECT x.id, x.tenant_id, x.rule_id, x.agent_id, x.probe_id, x.target_id, x.severity, 'firing', x.message, x.value,
              x.threshold, to_timestamp(x.fired_at / 1000.0), x.labels, x.annotations
         FROM jsonb_to_recordset($1::text::jsonb) AS x(id uuid, tenant_id uuid, rule_id uuid, agent_id uuid, probe_id uuid,
              target_id uuid, severity text, message text, value float8, threshold float8, fired_at float8, labels jsonb,
              annotations jsonb)
       ON CONFLICT (id) DO NOTHING`,
      [
        JSON.stringify(
          fires.map((h) => ({
            id: h.id,
            tenant_id: h.tenantId,
            rule_id: h.ruleId,
            agent_id: h.agentId,
            probe_id: h.probeId,
            target_id: h.targetId,
            severity: h.severity,
            message: h.message,
            value: h.value !== null && Number.isFinite(h.value) ? h.value : null,
            threshold: h.threshold,
            fired_at: h.firedAt,
            labels: h.labels,
            annotations: h.annotations,
          })),
        ),
      ] as never[],
    );
  }
  const resolves = out.history.filter((h) => h.op === "resolve");
  if (resolves.length > 0) {
    await tx.unsafe(
      `UPDATE alert_history h SET status = 'resolved', resolved_at = greatest(h.fired_at, to_timestamp(x.resolved_at / 1000.0))
         FROM jsonb_to_recordset($1::text::jsonb) AS x(id uuid, tenant_id uuid, resolved_at float8)
        WHERE h.id = x.id AND h.tenant_id = x.tenant_id AND h.status = 'firing'`,
      [
        JSON.stringify(resolves.map((h) => ({ id: h.id, tenant_id: h.tenantId, resolved_at: h.resolvedAt }))),
      ] as never[],
    );
  }
  if (out.outbox.length === 0) return 0;
  const inserted = await tx.unsafe(
    `INSERT INTO notification_outbox (tenant_id, channel_id, rule_id, kind, idempotency_key, payload)
     SELECT x.tenant_id, x.channel_id, x.rule_id, x.kind, x.idempotency_key, x.payload
       FROM jsonb_to_recordset($1::text::jsonb) AS x(tenant_id uuid, channel_id uuid, rule_id uuid, kind text,
            idempotency_key text, payload jsonb)
      WHERE EXISTS (SELECT 1 FROM notification_channels c WHERE c.id = x.channel_id AND c.tenant_id = x.tenant_id AND c.enabled)
     ON CONFLICT (idempotency_key) DO NOTHING
     RETURNING id`,
    [
      JSON.stringify(
        out.outbox.map((o) => ({
          tenant_id: o.tenantId,
          channel_id: o.channelId,
          rule_id: o.ruleId,
          kind: o.kind,
          idempotency_key: o.idempotencyKey,
          payload: o.payload,
        })),
      ),
    ] as never[],
  );
  if (inserted.length > 0) await tx`SELECT pg_notify(${OUTBOX_CHANNEL}, '')`;
  return inserted.length;
}

/** LISTEN/NOTIFY channel that wakes delivery workers when rows are queued. */
export const OUTBOX_CHANNEL = "secumon_outbox";
