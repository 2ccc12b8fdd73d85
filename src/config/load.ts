/**
 * Loading the configuration, once, at boot: YAML file → `SECUMON_*` environment → command-line overrides →
 * defaults → schema → cross-field checks. Every problem found is reported together in one ConfigError, each as
 * `<where>: <what is wrong and what to do>`, where is a JSON pointer into the document (`/api/port`), a
 * `file:line:column` for YAML syntax, or the name of an environment variable.
 *
 * In the file, an empty value (`api:` with nothing under it, `~`, `null`) means "not set": the default applies.
 */
import { readFileSync } from "node:fs";
import type { TSchema } from "@sinclair/typebox";
import { Value, type ValueError, ValueErrorType } from "@sinclair/typebox/value";
import { parseDocument } from "yaml";
import { ConfigError } from "../lib/errors.ts";
import { envOverrides, setIn } from "./env.ts";
import { describeErrors } from "./problems.ts";
import { type Config, type ConfigOverrides, ConfigSchema, childrenOf, schemaAt } from "./schema.ts";
import { semanticProblems } from "./semantic.ts";

export interface LoadOptions {
  /** YAML file to read. Omitted: defaults, environment and overrides only. */
  file?: string;
  /** Environment to take `SECUMON_*` overrides from; process.env by default. */
  env?: Record<string, string | undefined>;
  /** Values that win over the file and the environment (command-line flags such as --data-dir, --roles). */
  overrides?: ConfigOverrides;
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const problems: string[] = [];
  const fromFile = opts.file === undefined ? {} : readYaml(opts.file, problems);
  const env = envOverrides(opts.env ?? process.env);
  problems.push(...env.problems);
  if (problems.length > 0 && fromFile === undefined) throw new ConfigError(problems);

  const overrides = stripNulls(opts.overrides ?? {});
  const value = Value.Default(ConfigSchema, merge(merge(fromFile ?? {}, env.values), overrides));
  const overridden = new Set(leafPointers(overrides));
  // Name where a bad value came from when it was not the file: `/api/port: … (from SECUMON_API__PORT)`.
  const from = (problem: string) => {
    for (let at = problem.slice(0, problem.indexOf(":")); at !== ""; at = at.slice(0, at.lastIndexOf("/"))) {
      const source = overridden.has(at) ? "command line" : env.sources.get(at);
      if (source) return `${problem} (from ${source})`;
    }
    return problem;
  };
  const errors = [...Value.Errors(ConfigSchema, value)];
  problems.push(...describeErrors(errors).map(from));
  problems.push(...crossFieldProblems(value, errors).map(from));
  if (problems.length > 0) throw new ConfigError(problems);
  return inSchemaOrder(ConfigSchema, value) as Config;
}

/** Keys in the schema's order rather than the file's, so printed configs (check-config) read the same. */
function inSchemaOrder(schema: TSchema, value: unknown): unknown {
  const kids = childrenOf(schema);
  if (!kids || !isMapping(value)) return value;
  return Object.fromEntries(Object.entries(kids).map(([k, s]) => [k, inSchemaOrder(s, value[k])]));
}

/**
 * Cross-field checks, run even when some fields are invalid so that one run reports everything: on a copy
 * where each invalid field holds its default, keeping only the problems that name no invalid field.
 */
function crossFieldProblems(value: unknown, errors: ValueError[]): string[] {
  const bad = errors.filter((e) => e.type !== ValueErrorType.ObjectAdditionalProperties).map((e) => e.path);
  const repaired = Value.Clean(ConfigSchema, structuredClone(value)) as Record<string, unknown>;
  for (const at of bad) {
    const path = at.split("/").slice(1);
    while (path.length > 0 && !schemaAt(path)) path.pop(); // `/roles/2` → `/roles`
    if (path.length === 0) return []; // the whole document is unusable
    setIn(repaired, path, Value.Create(schemaAt(path)!));
  }
  if (!Value.Check(ConfigSchema, repaired)) return [];
  const related = (p: string) => bad.some((b) => b === p || b.startsWith(`${p}/`) || p.startsWith(`${b}/`));
  return semanticProblems(repaired).filter((m) => !(m.match(/(\/[a-z0-9_]+)+/g) ?? []).some(related));
}

/** The document as a plain object, or undefined when it cannot be used (problems added). */
function readYaml(file: string, problems: string[]): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file: check the path given with --config (or SECUMON_CONFIG), or leave it out to run with defaults"
        : code === "EACCES"
          ? "permission denied: make the file readable by the collector's user"
          : code === "EISDIR"
            ? "is a directory: name the YAML file inside it"
            : `cannot be read (${code ?? String(e)})`;
    problems.push(`${file}: ${why}`);
    return undefined;
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const seen = new Set<string>();
    for (const err of doc.errors) {
      const pos = err.linePos?.[0];
      const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
      if (seen.has(where)) continue; // one cascade of errors per place
      seen.add(where);
      const message = err.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
      problems.push(`${where}: ${message.charAt(0).toLowerCase()}${message.slice(1)} (YAML syntax)`);
    }
    return undefined;
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    problems.push(`${file}: ${(e as Error).message}`);
    return undefined;
  }
  data = stripNulls(data);
  if (data === undefined) return {};
  if (typeof data !== "object" || Array.isArray(data)) {
    problems.push(
      `${file}: expected a mapping of sections (data_dir, roles, api, …) at the top of the document`,
    );
    return undefined;
  }
  return data as Record<string, unknown>;
}

const isMapping = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Drops null values (an empty YAML value means "not set"); null alone becomes undefined. */
function stripNulls(v: unknown): unknown {
  if (v === null) return undefined;
  if (Array.isArray(v)) return v.map(stripNulls);
  if (!isMapping(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const y = stripNulls(x);
    if (y !== undefined) out[k] = y;
  }
  return out;
}

/** Deep merge of mappings; lists and scalars of `top` replace those of `base`. */
function merge(base: Record<string, unknown>, top: unknown): Record<string, unknown> {
  if (!isMapping(top)) return base;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(top)) {
    out[k] = isMapping(v) && isMapping(out[k]) ? merge(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

function leafPointers(v: unknown, at = ""): string[] {
  if (!isMapping(v)) return [at];
  return Object.entries(v).flatMap(([k, x]) => leafPointers(x, `${at}/${k}`));
}
