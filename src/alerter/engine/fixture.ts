/**
 * A small text format for rule-engine tests, in the spirit of Prometheus's promqltest scripts:
 *
 *   interval 1m                                  # evaluation interval (default 1m); cycles run at 0, 1m, 2m, …
 *   agent a1 name=web-1 tags=web,prod            # inventory (created long before time 0, status online)
 *   load 1m                                      # samples every 1m from time 0
 *     system.cpu_usage{agent_id="a1"} 10 20 95x3 _ 1+1x2
 *   rule high_cpu threshold for=2m keep_firing_for=0s severity=critical
 *     {"conditions": [{"metric": "system.cpu_usage", "aggregation": "last", "window": "2m", "threshold": 90}]}
 *   eval at 4m                                   # after the cycle at 4m, exactly these instances are active
 *     pending high_cpu{agent_id="a1"} 95
 *   eval at 9m                                   # no lines: nothing pending or firing
 *
 * Values: `n` one sample, `_` a gap, `AxN` A repeated N+1 times, `A+BxN` / `A-BxN` N+1 samples from A by B,
 * `_xN` N+1 gaps. Times: 90s, 5m, 1h30m. A line starting with # is a comment.
 */

import { parseRuleDuration } from "../rules/duration.ts";
import { parseMatchers } from "../rules/matchers.ts";
import { SOURCES } from "../rules/metrics.ts";
import type { Rule, RuleType, Source } from "../rules/types.ts";
import { compileConditions, type ValidationError } from "../rules/validate.ts";
import { runCycle } from "./cycle.ts";
import { evaluateRules } from "./evaluate.ts";
import { MemoryQueryPort } from "./memory.ts";
import type { Instance } from "./state.ts";

export const FIXTURE_TENANT = "00000000-0000-4000-8000-000000000001";
export const FIXTURE_T0 = Date.UTC(2025, 0, 1);

interface Expect {
  state: "pending" | "firing";
  rule: string;
  labels: Record<string, string>;
  value?: number;
  line: number;
}

export interface Fixture {
  intervalMs: number;
  port: MemoryQueryPort;
  rules: Rule[];
  evals: { at: number; expect: Expect[]; line: number }[];
}

const dur = (s: string, line: number): number => {
  const ms = parseRuleDuration(s);
  if (ms === null) throw new Error(`line ${line}: ${JSON.stringify(s)} is not a duration`);
  return ms;
};

function parseSelector(text: string, line: number): { head: string; labels: Record<string, string> } {
  const b = text.indexOf("{");
  const head = b < 0 ? text : text.slice(0, b);
  const labels: Record<string, string> = {};
  if (b >= 0) {
    if (!text.endsWith("}")) throw new Error(`line ${line}: ${text} lacks a closing }`);
    for (const m of parseMatchers(text.slice(b + 1, -1))) labels[m.name] = m.value;
  }
  return { head, labels };
}

function expandValues(tokens: string[], line: number): (number | null)[] {
  const out: (number | null)[] = [];
  for (const tok of tokens) {
    let m = /^_(?:x(\d+))?$/.exec(tok);
    if (m) {
      for (let i = 0; i <= Number(m[1] ?? 0); i++) out.push(null);
      continue;
    }
    m = /^(-?[\d.]+(?:e-?\d+)?)(?:([+-])([\d.]+))?x(\d+)$/.exec(tok);
    if (m) {
      const a = Number(m[1]);
      const b = m[3] === undefined ? 0 : Number(m[3]) * (m[2] === "-" ? -1 : 1);
      for (let i = 0; i <= Number(m[4]); i++) out.push(a + b * i);
      continue;
    }
    const v = Number(tok);
    if (tok === "" || !Number.isFinite(v)) throw new Error(`line ${line}: bad value ${JSON.stringify(tok)}`);
    out.push(v);
  }
  return out;
}

export function parseFixture(text: string): Fixture {
  const port = new MemoryQueryPort();
  const fx: Fixture = { intervalMs: 60_000, port, rules: [], evals: [] };
  const lines = text.split("\n");
  let mode:
    | { kind: "load"; stepMs: number }
    | { kind: "rule"; rule: Partial<Rule> & { name: string; type: RuleType } }
    | { kind: "eval"; at: number; expect: Expect[] }
    | null = null;
  const finishRule = (line: number) => {
    if (mode?.kind === "rule") throw new Error(`line ${line}: rule ${mode.rule.name} has no conditions line`);
  };
  lines.forEach((raw, i) => {
    const n = i + 1;
    const line = raw.replace(/\s+#.*$/, "").replace(/^#.*$/, "");
    if (line.trim() === "") return;
    const indented = /^\s/.test(line);
    const words = line.trim().split(/\s+/);
    if (!indented) {
      finishRule(n);
      const [kw, ...rest] = words;
      switch (kw) {
        case "interval":
          fx.intervalMs = dur(rest[0] ?? "", n);
          mode = null;
          return;
        case "agent":
        case "probe":
        case "target": {
          const opts = Object.fromEntries(rest.slice(1).map((w) => w.split("=") as [string, string]));
          port.entity(FIXTURE_TENANT, `${kw}s` as "agents", {
            id: rest[0] ?? "",
            name: opts.name ?? rest[0] ?? "",
            tags: opts.tags ? opts.tags.split(",") : [],
            createdAt: FIXTURE_T0 - (opts.created ? dur(opts.created, n) : 86_400_000),
            status: opts.status ?? "online",
          });
          if (kw === "target" && opts.probes)
            for (const p of opts.probes.split(",")) port.assign(FIXTURE_TENANT, rest[0] ?? "", p);
          mode = null;
          return;
        }
        case "load":
          mode = { kind: "load", stepMs: dur(rest[0] ?? "", n) };
          return;
        case "rule": {
          const [name, type, ...opts] = rest;
          if (!name || !type) throw new Error(`line ${n}: rule <name> <type> [for=…] [keep_firing_for=…]`);
          const o = Object.fromEntries(opts.map((w) => w.split("=") as [string, string]));
          mode = {
            kind: "rule",
            rule: {
              name,
              type: type as RuleType,
              forMs: o.for ? dur(o.for, n) : 0,
              keepFiringForMs: o.keep_firing_for ? dur(o.keep_firing_for, n) : 0,
              severity: (o.severity ?? "warning") as Rule["severity"],
            },
          };
          return;
        }
        case "eval": {
          if (rest[0] !== "at" || !rest[1]) throw new Error(`line ${n}: eval at <time>`);
          const e = { at: dur(rest[1], n), expect: [] as Expect[], line: n };
          fx.evals.push(e);
          mode = { kind: "eval", at: e.at, expect: e.expect };
          return;
        }
        default:
          throw new Error(`line ${n}: unknown directive ${JSON.stringify(kw)}`);
      }
    }
    const m = mode as typeof mode;
    if (!m) throw new Error(`line ${n}: indented line outside load, rule or eval`);
    if (m.kind === "load") {
      const [sel, ...vals] = words;
      const { head, labels } = parseSelector(sel ?? "", n);
      const [source, field] = [head.slice(0, head.indexOf(".")), head.slice(head.indexOf(".") + 1)];
      if (!(source in SOURCES)) throw new Error(`line ${n}: unknown source in ${head}`);
      const samples: [number, number][] = [];
      expandValues(vals, n).forEach((v, k) => {
        if (v !== null) samples.push([FIXTURE_T0 + k * m.stepMs, v]);
      });
      port.add({ tenantId: FIXTURE_TENANT, source: source as Source, field, labels, samples });
    } else if (m.kind === "rule") {
      const errors: ValidationError[] = [];
      const compiled = compileConditions(m.rule.type, JSON.parse(line.trim()), "/conditions", errors);
      if (!compiled) throw new Error(`line ${n}: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`);
      fx.rules.push({
        ...compiled,
        id: `rule-${m.rule.name}`,
        tenantId: FIXTURE_TENANT,
        name: m.rule.name,
        severity: m.rule.severity ?? "warning",
        type: m.rule.type,
        forMs: m.rule.forMs ?? 0,
        keepFiringForMs: m.rule.keepFiringForMs ?? 0,
        repeatMs: null,
        labels: {},
        annotations: {},
        channels: [],
        escalations: [],
      });
      mode = null;
    } else {
      const [state, sel, value] = words;
      if (state !== "pending" && state !== "firing")
        throw new Error(`line ${n}: expected pending or firing, got ${state}`);
      const { head, labels } = parseSelector(sel ?? "", n);
      m.expect.push({
        state,
        rule: head,
        labels,
        line: n,
        ...(value === undefined ? {} : { value: Number(value) }),
      });
    }
  });
  finishRule(lines.length);
  return fx;
}

/** Runs a fixture; returns the mismatches (empty = pass). */
export async function runFixture(text: string): Promise<string[]> {
  const fx = parseFixture(text);
  const instances = new Map<string, Map<string, Instance>>();
  const problems: string[] = [];
  let seq = 0;
  const last = Math.max(0, ...fx.evals.map((e) => e.at));
  for (let t = 0; t <= last; t += fx.intervalMs) {
    const now = FIXTURE_T0 + t;
    const evaluation = await evaluateRules(fx.rules, now, fx.port);
    for (const [id, why] of evaluation.failed) problems.push(`at ${t / 1000}s rule ${id} failed: ${why}`);
    runCycle({
      now,
      rules: fx.rules,
      evaluation,
      instances,
      silences: [],
      cooldownMs: 0,
      newId: () => `id-${++seq}`,
    });
    for (const e of fx.evals.filter((x) => x.at === t)) {
      const got = [...instances.values()]
        .flatMap((m) => [...m.values()])
        .filter((i) => i.state !== "resolved");
      const unmatched = [...got];
      for (const x of e.expect) {
        const k = unmatched.findIndex(
          (g) =>
            g.ruleId === `rule-${x.rule}` &&
            g.state === x.state &&
            Object.entries(x.labels).every(([a, b]) => g.labels[a] === b),
        );
        if (k < 0) {
          problems.push(
            `eval at ${t / 1000}s (line ${x.line}): expected ${x.state} ${x.rule}${JSON.stringify(x.labels)}, not found; got ${describe(got)}`,
          );
          continue;
        }
        const g = unmatched.splice(k, 1)[0] as Instance;
        if (
          x.value !== undefined &&
          (g.value === null || Math.abs(g.value - x.value) > 1e-6 * Math.max(1, Math.abs(x.value)))
        )
          problems.push(
            `eval at ${t / 1000}s (line ${x.line}): ${x.rule} value ${g.value}, expected ${x.value}`,
          );
      }
      for (const g of unmatched)
        problems.push(`eval at ${t / 1000}s (line ${e.line}): unexpected ${describe([g])}`);
    }
  }
  return problems;
}

function describe(xs: Instance[]): string {
  if (xs.length === 0) return "nothing";
  return xs.map((g) => `${g.state} ${g.labels.alertname}{${g.fingerprint}} ${g.value}`).join("; ");
}
