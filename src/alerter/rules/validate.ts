/**
 * Rule validation, shared by the API (on write) and the evaluator (on load): pure, no I/O. Every error has
 * the JSON path of the offending field and says what is accepted.
 *
 *   const r = validateRule(body);
 *   if (!r.ok) → 400 with r.errors ([{ path: "/conditions/conditions/0/window", message: "…" }])
 *   else r.rule (normalised RuleInput) and r.compiled (what the evaluator runs)
 */
import { formatDuration, parseRuleDuration } from "./duration.ts";
import { parseMetric } from "./metrics.ts";
import {
  AGGREGATIONS,
  type Aggregation,
  type CompiledConditions,
  type Condition,
  type ConditionInput,
  type ConditionsDoc,
  OPERATORS,
  type Operator,
  RULE_TYPES,
  type RuleInput,
  type RuleType,
  SEVERITIES,
} from "./types.ts";

export interface ValidationError {
  path: string;
  message: string;
}

export type ValidationResult =
  | {
      ok: true;
      rule: RuleInput;
      compiled: CompiledConditions;
      forMs: number;
      keepFiringForMs: number;
      repeatMs: number | null;
    }
  | { ok: false; errors: ValidationError[] };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DAY = 86_400_000;
const MAX_CONDITIONS = 10;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const RULE_KEYS = new Set([
  "name",
  "description",
  "enabled",
  "severity",
  "type",
  "conditions",
  "for_duration",
  "keep_firing_for",
  "repeat_interval",
  "labels",
  "annotations",
]);
const DOC_KEYS = new Set(["match", "scope", "conditions"]);
const SCOPE_KEYS = new Set(["agents", "probes", "targets", "tags"]);
const COND_KEYS: Record<RuleType, Set<string>> = {
  threshold: new Set(["type", "metric", "aggregation", "window", "operator", "threshold"]),
  change: new Set(["type", "metric", "aggregation", "window", "operator", "threshold", "offset", "mode"]),
  anomaly: new Set([
    "type",
    "metric",
    "aggregation",
    "window",
    "operator",
    "threshold",
    "baseline",
    "min_history",
  ]),
  absent: new Set(["type", "metric", "absent_for"]),
};

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const oneOf = (xs: readonly string[]) => xs.map((x) => JSON.stringify(x)).join(", ");

/** Validates a whole rule as written through the API. */
export function validateRule(input: unknown): ValidationResult {
  const errors: ValidationError[] = [];
  const err = (path: string, message: string) => errors.push({ path, message });
  if (!isObj(input)) return { ok: false, errors: [{ path: "", message: "a rule must be a JSON object" }] };
  for (const k of Object.keys(input)) if (!RULE_KEYS.has(k)) err(`/${k}`, `unknown field "${k}"`);

  const name = input.name;
  if (typeof name !== "string" || name.trim() === "") err("/name", "name is required (a non-empty string)");
  else if (name.length > 200) err("/name", "name must be at most 200 characters");
  if (input.description !== undefined && input.description !== null && typeof input.description !== "string")
    err("/description", "description must be a string");
  if (input.enabled !== undefined && typeof input.enabled !== "boolean")
    err("/enabled", "enabled must be true or false");
  if (!SEVERITIES.includes(input.severity as never))
    err("/severity", `severity must be one of ${oneOf(SEVERITIES)}`);
  const typeOk = RULE_TYPES.includes(input.type as never);
  if (!typeOk) err("/type", `type must be one of ${oneOf(RULE_TYPES)}`);

  const dur = (key: string, def: string, max: number, allowNull = false): number | null => {
    const v = input[key];
    if (v === undefined) return parseRuleDuration(def);
    if (v === null && allowNull) return null;
    const ms = typeof v === "string" ? parseRuleDuration(v) : null;
    if (ms === null) {
      err(
        `/${key}`,
        `${key} must be a duration such as "30s", "5m" or "1h30m"${allowNull ? ", or null" : ""}`,
      );
      return 0;
    }
    if (ms > max) err(`/${key}`, `${key} must be at most ${formatDuration(max)}`);
    return ms;
  };
  const forMs = dur("for_duration", "0s", 7 * DAY) ?? 0;
  const keepFiringForMs = dur("keep_firing_for", "0s", 7 * DAY) ?? 0;
  const repeatMs = input.repeat_interval === undefined ? null : dur("repeat_interval", "0s", 30 * DAY, true);
  if (repeatMs === 0)
    err("/repeat_interval", "repeat_interval must be longer than 0 (or null for the configured cooldown)");

  for (const key of ["labels", "annotations"] as const) {
    const v = input[key];
    if (v === undefined) continue;
    if (!isObj(v)) {
      err(`/${key}`, `${key} must be an object of strings`);
      continue;
    }
    for (const [k, x] of Object.entries(v)) {
      if (key === "labels" && !LABEL_NAME.test(k))
        err(`/${key}/${k}`, "label names must match [a-zA-Z_][a-zA-Z0-9_]*");
      if (typeof x !== "string") err(`/${key}/${k}`, `${key} values must be strings`);
    }
  }

  const compiled = typeOk
    ? compileConditions(input.type as RuleType, input.conditions, "/conditions", errors)
    : null;
  if (errors.length > 0 || !compiled) return { ok: false, errors };
  const rule: RuleInput = {
    name: (name as string).trim(),
    description: (input.description as string | null | undefined) ?? null,
    enabled: (input.enabled as boolean | undefined) ?? true,
    severity: input.severity as RuleInput["severity"],
    type: input.type as RuleType,
    conditions: input.conditions as ConditionsDoc,
    for_duration: formatDuration(forMs),
    keep_firing_for: formatDuration(keepFiringForMs),
    repeat_interval: repeatMs === null ? null : formatDuration(repeatMs),
    labels: (input.labels as Record<string, string> | undefined) ?? {},
    annotations: (input.annotations as Record<string, string> | undefined) ?? {},
  };
  return { ok: true, rule, compiled, forMs, keepFiringForMs, repeatMs };
}

/**
 * Validates and compiles `alert_rules.conditions` for a rule of `type` (the evaluator calls this on every
 * rule it loads). Errors are appended to `errors`; returns null when there was any.
 */
export function compileConditions(
  type: RuleType,
  doc: unknown,
  at: string,
  errors: ValidationError[],
): CompiledConditions | null {
  const before = errors.length;
  const err = (path: string, message: string) => errors.push({ path, message });
  if (!isObj(doc)) {
    err(
      at,
      'conditions must be an object: {"match": "all", "scope": {...}, "conditions": [{"metric": "system.cpu_usage", ...}]}',
    );
    return null;
  }
  for (const k of Object.keys(doc)) if (!DOC_KEYS.has(k)) err(`${at}/${k}`, `unknown field "${k}"`);
  const match = doc.match ?? "all";
  if (match !== "all" && match !== "any") err(`${at}/match`, 'match must be "all" or "any"');

  const scope = {
    agents: [] as string[],
    probes: [] as string[],
    targets: [] as string[],
    tags: [] as string[],
  };
  if (doc.scope !== undefined) {
    if (!isObj(doc.scope)) err(`${at}/scope`, "scope must be an object with agents, probes, targets or tags");
    else {
      for (const k of Object.keys(doc.scope))
        if (!SCOPE_KEYS.has(k)) err(`${at}/scope/${k}`, `unknown field "${k}"`);
      for (const k of ["agents", "probes", "targets", "tags"] as const) {
        const v = doc.scope[k];
        if (v === undefined) continue;
        if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
          err(`${at}/scope/${k}`, `${k} must be a list of ${k === "tags" ? "strings" : "ids"}`);
          continue;
        }
        if (k !== "tags")
          v.forEach((x, i) => {
            if (!UUID.test(x as string)) err(`${at}/scope/${k}/${i}`, `${JSON.stringify(x)} is not a UUID`);
          });
        scope[k] = [...new Set(v as string[])];
      }
    }
  }

  const list = doc.conditions;
  const conditions: Condition[] = [];
  if (!Array.isArray(list) || list.length === 0) {
    err(`${at}/conditions`, "conditions must be a non-empty list");
  } else if (list.length > MAX_CONDITIONS) {
    err(`${at}/conditions`, `at most ${MAX_CONDITIONS} conditions per rule`);
  } else {
    list.forEach((c, i) => {
      const cc = compileCondition(type, c, `${at}/conditions/${i}`, errors);
      if (cc) conditions.push(cc);
    });
  }
  if (errors.length > before) return null;
  return { match: match as "all" | "any", scope, conditions };
}

function compileCondition(
  ruleType: RuleType,
  c: unknown,
  at: string,
  errors: ValidationError[],
): Condition | null {
  const before = errors.length;
  const err = (path: string, message: string) => errors.push({ path: `${at}${path}`, message });
  if (!isObj(c)) {
    err(
      "",
      'a condition must be an object such as {"metric": "system.cpu_usage", "operator": "gt", "threshold": 90}',
    );
    return null;
  }
  const input = c as unknown as ConditionInput;
  const type = (input.type ?? ruleType) as RuleType;
  if (!RULE_TYPES.includes(type)) {
    err("/type", `type must be one of ${oneOf(RULE_TYPES)}`);
    return null;
  }
  for (const k of Object.keys(c))
    if (!COND_KEYS[type].has(k)) err(`/${k}`, `field "${k}" does not apply to a ${type} condition`);

  let metric = null;
  try {
    metric = parseMetric(input.metric);
  } catch (e) {
    err("/metric", (e as Error).message);
  }
  const dur = (key: keyof ConditionInput, def: string, min: number, max: number): number => {
    const v = input[key];
    const ms = v === undefined ? parseRuleDuration(def) : typeof v === "string" ? parseRuleDuration(v) : null;
    if (ms === null) {
      err(`/${key}`, `${key} must be a duration such as "30s", "5m" or "1h"`);
      return 0;
    }
    if (ms < min || ms > max)
      err(`/${key}`, `${key} must be between ${formatDuration(min)} and ${formatDuration(max)}`);
    return ms;
  };
  const aggregation = (input.aggregation ?? "avg") as Aggregation;
  if (!AGGREGATIONS.includes(aggregation))
    err("/aggregation", `aggregation must be one of ${oneOf(AGGREGATIONS)}`);
  const operator = (input.operator ?? "gt") as Operator;
  if (!OPERATORS.includes(operator)) err("/operator", `operator must be one of ${oneOf(OPERATORS)}`);
  const needThreshold = type !== "absent";
  const threshold = input.threshold ?? (type === "anomaly" ? 3 : undefined);
  if (needThreshold && (typeof threshold !== "number" || !Number.isFinite(threshold)))
    err("/threshold", `threshold is required for a ${type} condition (a finite number)`);

  const windowMs = type === "absent" ? 0 : dur("window", "5m", 1000, 7 * DAY);
  const offsetMs = type === "change" ? dur("offset", "1h", 1000, 30 * DAY) : 0;
  const mode = input.mode ?? "absolute";
  if (type === "change" && mode !== "absolute" && mode !== "percent")
    err("/mode", 'mode must be "absolute" or "percent"');
  const baselineMs = type === "anomaly" ? dur("baseline", "1d", 60_000, 30 * DAY) : 0;
  const minHistoryMs = type === "anomaly" ? dur("min_history", "1h", 0, 30 * DAY) : 0;
  if (type === "anomaly" && baselineMs <= windowMs) err("/baseline", "baseline must be longer than window");
  if (type === "anomaly" && minHistoryMs > baselineMs)
    err("/min_history", "min_history must not exceed baseline");
  const absentForMs = type === "absent" ? dur("absent_for", "5m", 1000, 30 * DAY) : 0;

  if (errors.length > before || !metric) return null;
  return {
    type,
    metric,
    aggregation,
    windowMs,
    operator,
    threshold: (threshold as number | undefined) ?? 0,
    offsetMs,
    mode,
    baselineMs,
    minHistoryMs,
    absentForMs,
  };
}
