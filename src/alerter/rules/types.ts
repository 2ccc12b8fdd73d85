/**
 * The alert rule model. `alert_rules.conditions` (jsonb) holds a ConditionsDoc; src/alerter/rules/validate.ts
 * turns a written rule into a CompiledRule or a list of clear errors, identically for the API and the
 * evaluator.
 */
export const SEVERITIES = ["info", "warning", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];

export const RULE_TYPES = ["threshold", "change", "anomaly", "absent"] as const;
export type RuleType = (typeof RULE_TYPES)[number];

/** How samples in the window become one value. `rate` = per-second increase (counters), `last` = newest. */
export const AGGREGATIONS = ["avg", "min", "max", "last", "count", "sum", "rate"] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

export const OPERATORS = ["gt", "ge", "lt", "le", "eq", "ne"] as const;
export type Operator = (typeof OPERATORS)[number];

export type MatchOp = "=" | "!=" | "=~" | "!~";
export interface LabelMatcher {
  name: string;
  op: MatchOp;
  value: string;
}

/** One condition as written in `alert_rules.conditions.conditions[]` (JSON; durations as "5m"). */
export interface ConditionInput {
  /** Defaults to the rule's type. */
  type?: RuleType;
  /** e.g. `system.cpu_usage`, `disk.usage_percent{mountpoint="/"}`, `scan.success`, `snmp.ifInErrors`. */
  metric: string;
  /** threshold/change/anomaly: how samples in the window become one value (default avg). */
  aggregation?: Aggregation;
  /** threshold/change/anomaly: the window aggregated (default 5m). */
  window?: string;
  /** threshold/change: comparison with `threshold` (default gt). anomaly: compares the z-score. */
  operator?: Operator;
  threshold?: number;
  /** change: compare with the value this long ago (default 1h). */
  offset?: string;
  /** change: `absolute` (value − previous) or `percent` (100 × (value − previous) / |previous|). */
  mode?: "absolute" | "percent";
  /** anomaly: rolling baseline before the window (default 1d). */
  baseline?: string;
  /** anomaly: the series needs data this old before it may fire (default 1h). */
  min_history?: string;
  /** absent: no sample for this long (default 5m). */
  absent_for?: string;
}

export interface ScopeInput {
  agents?: string[];
  probes?: string[];
  targets?: string[];
  /** Entities (agent, probe or target of the series) carrying any of these tags. */
  tags?: string[];
}

/** The whole `alert_rules.conditions` document. */
export interface ConditionsDoc {
  match?: "all" | "any";
  scope?: ScopeInput;
  conditions: ConditionInput[];
}

/** A rule as written through the API (validate.ts validateRule). Durations as strings ("5m", "1h30m"). */
export interface RuleInput {
  name: string;
  description?: string | null;
  enabled?: boolean;
  severity: Severity;
  type: RuleType;
  conditions: ConditionsDoc;
  for_duration?: string;
  keep_firing_for?: string;
  /** null = the configured alerter.notification_cooldown. */
  repeat_interval?: string | null;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export type Source = "system" | "disk" | "network" | "scan" | "snmp";

export interface MetricRef {
  /** As written, normalised (`disk.usage_percent{mountpoint="/"}`). */
  text: string;
  source: Source;
  /** Column (or, for snmp, the oid_name). */
  field: string;
  matchers: LabelMatcher[];
}

export interface Condition {
  type: RuleType;
  metric: MetricRef;
  aggregation: Aggregation;
  windowMs: number;
  operator: Operator;
  threshold: number;
  offsetMs: number;
  mode: "absolute" | "percent";
  baselineMs: number;
  minHistoryMs: number;
  absentForMs: number;
}

export interface Scope {
  agents: string[];
  probes: string[];
  targets: string[];
  tags: string[];
}

export interface CompiledConditions {
  match: "all" | "any";
  scope: Scope;
  conditions: Condition[];
}

export interface EscalationStep {
  level: number;
  afterMs: number;
  channels: string[];
}

/** A rule ready for the evaluator (loaded from alert_rules and compiled). */
export interface Rule extends CompiledConditions {
  id: string;
  tenantId: string;
  name: string;
  severity: Severity;
  type: RuleType;
  forMs: number;
  keepFiringForMs: number;
  /** null: the configured cooldown. */
  repeatMs: number | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Level-0 channels (alert_rule_channels). */
  channels: string[];
  escalations: EscalationStep[];
}
