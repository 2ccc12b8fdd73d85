/** Label matchers (`{mountpoint="/", device=~"sd.*"}`), shared by metric selectors and silences. Pure. */
import type { LabelMatcher, MatchOp } from "./types.ts";

const OPS: readonly MatchOp[] = ["=~", "!~", "!=", "="];
const NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Parses the inside of `{…}`; throws an Error whose message says what is wrong. */
export function parseMatchers(body: string): LabelMatcher[] {
  const out: LabelMatcher[] = [];
  let i = 0;
  const s = body;
  const skipWs = () => {
    while (i < s.length && /\s/.test(s[i] as string)) i++;
  };
  while (true) {
    skipWs();
    if (i >= s.length) break;
    const nameStart = i;
    while (i < s.length && /[a-zA-Z0-9_]/.test(s[i] as string)) i++;
    const name = s.slice(nameStart, i);
    if (!NAME.test(name)) throw new Error(`expected a label name at position ${nameStart + 1} of {${body}}`);
    skipWs();
    const op = OPS.find((o) => s.startsWith(o, i));
    if (!op) throw new Error(`expected =, !=, =~ or !~ after label ${name}`);
    i += op.length;
    skipWs();
    if (s[i] !== '"') throw new Error(`the value of label ${name} must be in double quotes`);
    i++;
    let value = "";
    while (i < s.length && s[i] !== '"') {
      if (s[i] === "\\" && i + 1 < s.length) i++;
      value += s[i];
      i++;
    }
    if (s[i] !== '"') throw new Error(`the value of label ${name} has no closing double quote`);
    i++;
    out.push(checkMatcher({ name, op, value }));
    skipWs();
    if (i >= s.length) break;
    if (s[i] !== ",") throw new Error(`expected , between label matchers in {${body}}`);
    i++;
  }
  return out;
}

/** Throws when a matcher is unusable (bad name, operator or regular expression). */
export function checkMatcher(m: LabelMatcher): LabelMatcher {
  if (typeof m?.name !== "string" || !NAME.test(m.name))
    throw new Error(`label name ${JSON.stringify(m?.name)} must match [a-zA-Z_][a-zA-Z0-9_]*`);
  if (!OPS.includes(m.op)) throw new Error(`operator of label ${m.name} must be one of = != =~ !~`);
  if (typeof m.value !== "string") throw new Error(`value of label ${m.name} must be a string`);
  if (m.op === "=~" || m.op === "!~") {
    try {
      new RegExp(`^(?:${m.value})$`);
    } catch (e) {
      throw new Error(`regular expression for label ${m.name} does not compile: ${(e as Error).message}`);
    }
  }
  return { name: m.name, op: m.op, value: m.value };
}

const cache = new Map<string, RegExp>();
function re(v: string): RegExp {
  let r = cache.get(v);
  if (!r) {
    r = new RegExp(`^(?:${v})$`);
    if (cache.size > 10_000) cache.clear();
    cache.set(v, r);
  }
  return r;
}

/** True when every matcher matches (a missing label reads as ""). */
export function matchesAll(
  matchers: readonly LabelMatcher[],
  labels: Readonly<Record<string, string>>,
): boolean {
  for (const m of matchers) {
    const v = labels[m.name] ?? "";
    switch (m.op) {
      case "=":
        if (v !== m.value) return false;
        break;
      case "!=":
        if (v === m.value) return false;
        break;
      case "=~":
        if (!re(m.value).test(v)) return false;
        break;
      case "!~":
        if (re(m.value).test(v)) return false;
        break;
    }
  }
  return true;
}

export function formatMatchers(ms: readonly LabelMatcher[]): string {
  return ms.length === 0 ? "" : `{${ms.map((m) => `${m.name}${m.op}${JSON.stringify(m.value)}`).join(", ")}}`;
}
