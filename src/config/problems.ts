/**
 * TypeBox validation errors rewritten for operators: one problem per path, `<path>: <what is wrong>`, naming
 * the unknown key and the accepted values, and never echoing the value of a secret field.
 */
import type { TSchema } from "@sinclair/typebox";
import { type ValueError, ValueErrorType } from "@sinclair/typebox/value";
import { childrenOf, isDuration, isSecret, schemaAt } from "./schema.ts";

/** One problem per path, first error wins (TypeBox reports e.g. both "type" and "range" for one value). */
export function describeErrors(errors: Iterable<ValueError>): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const e of errors) {
    const path = e.path === "" ? "/" : e.path;
    if (seen.has(path)) continue;
    seen.add(path);
    out.push(`${path}: ${describe(e)}`);
  }
  return out;
}

function describe(e: ValueError): string {
  const s = e.schema;
  const got = show(e.value, e.path);
  switch (e.type) {
    case ValueErrorType.ObjectAdditionalProperties:
      return unknownKey(e.path);
    case ValueErrorType.Object:
      return `expected a mapping (indented "key: value" lines), got ${got}`;
    case ValueErrorType.Array:
      return `expected a list, got ${got}`;
    case ValueErrorType.ArrayMinItems:
      return `must list at least one ${String(s["x-item"] ?? "item")}`;
    case ValueErrorType.ArrayUniqueItems:
      return `lists ${show(firstDuplicate(e.value), e.path)} more than once`;
    case ValueErrorType.Boolean:
      return `expected true or false, got ${got}`;
    case ValueErrorType.Integer:
    case ValueErrorType.Number:
      return `expected integer, got ${got}`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.NumberMaximum:
      return `${range(s)}, got ${got}`;
    case ValueErrorType.StringMinLength:
      return "must not be empty";
    case ValueErrorType.String:
    case ValueErrorType.StringPattern:
      return `expected ${expected(s)}, got ${got}${quoteHint(e)}`;
    case ValueErrorType.Literal:
      return `expected "${String(s.const)}", got ${got}`;
    case ValueErrorType.Union:
      return `expected ${expected(s)}, got ${got}`;
    default:
      return e.message.charAt(0).toLowerCase() + e.message.slice(1);
  }
}

/** YAML read `org_id: 123` as a number: quoting it is the fix for a plain string field. */
function quoteHint(e: ValueError): string {
  const plain = e.schema.pattern === undefined && e.schema.anyOf === undefined;
  return e.type === ValueErrorType.String && plain && typeof e.value !== "object"
    ? " (put it in quotes)"
    : "";
}

function firstDuplicate(list: unknown): unknown {
  const seen = new Set<string>();
  for (const v of Array.isArray(list) ? list : []) {
    const k = JSON.stringify(v);
    if (seen.has(k)) return v;
    seen.add(k);
  }
  return undefined;
}

function expected(s: TSchema): string {
  if (typeof s["x-expected"] === "string") return s["x-expected"];
  if (isDuration(s)) return 'a duration such as "30s" (a whole number followed by ms, s, m, h or d)';
  const literals = (s.anyOf as TSchema[] | undefined)?.map((a) => a.const);
  if (literals?.every((l) => typeof l === "string")) {
    return literals.length === 1 ? `"${literals[0]}"` : `one of ${literals.join(", ")}`;
  }
  if (typeof s.pattern === "string") return `a string matching ${s.pattern}`;
  return "string";
}

function range(s: TSchema): string {
  if (s["x-port"]) return "must be a port number from 0 to 65535";
  if (s.maximum !== undefined) return `must be from ${s.minimum ?? "-∞"} to ${s.maximum}`;
  return `must be at least ${s.minimum}`;
}

function unknownKey(path: string): string {
  const parts = path.split("/").slice(1);
  const key = parts.pop() ?? "";
  const known = Object.keys(childrenOf(schemaAt(parts)) ?? {});
  const close = known.find((k) => editDistance(k, key) <= Math.max(1, Math.floor(k.length / 4)));
  return close
    ? `unknown key (did you mean "${close}"?)`
    : `unknown key; known keys here: ${known.join(", ")}`;
}

/** The offending value, briefly; never the value of a secret field. */
function show(value: unknown, path: string): string {
  const kind =
    value === null
      ? "null"
      : Array.isArray(value)
        ? "a list"
        : typeof value === "object"
          ? "a mapping"
          : typeof value;
  const s = schemaAt(path.split("/").slice(1));
  if ((s && isSecret(s)) || typeof value === "object") return kind;
  const text = JSON.stringify(value) ?? String(value);
  return `${kind === "string" ? "" : `${kind} `}${text.length > 60 ? `${text.slice(0, 57)}...` : text}`;
}

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment). */
function editDistance(a: string, b: string): number {
  // d[i][j]: distance between the first i characters of a and the first j of b.
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(
        d[i - 1]![j]! + 1,
        row[j - 1]! + 1,
        d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
      }
    }
  }
  return d[a.length]![b.length]!;
}
