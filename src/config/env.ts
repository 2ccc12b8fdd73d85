/**
 * Environment overrides: `SECUMON_<SECTION>__<KEY>`, a double underscore for each level of nesting, names
 * upper-cased: `SECUMON_API__PORT=9090` sets `api.port`, `SECUMON_API__AUTH__JWT_SECRET=env:JWT` sets
 * `api.auth.jwt_secret`, `SECUMON_DATA_DIR=/srv/secumon` sets `data_dir`.
 *
 * Values are coerced to the field's type: integers, booleans (true/false/1/0/yes/no/on/off), lists as
 * comma-separated items (`SECUMON_ROLES=gateway,ingestion`; empty = empty list); strings are taken as they are.
 * A `SECUMON_` variable that names no key is an error, so a typo never goes unnoticed. Except:
 * - `SECUMON_LOG_LEVEL` is a short alias of `SECUMON_LOGGING__LEVEL` (the longer name wins when both are set);
 * - variables the collector reads elsewhere are not config keys and are left alone: `SECUMON_CONFIG` (the
 *   config file, read by the command line), `SECUMON_NATS_SERVER_BIN` / `SECUMON_WIREGUARD_GO_BIN` (executables
 *   to run instead of the bundled ones, src/assets/binaries.ts) and `SECUMON_TEST_*` (the test harness).
 */
import type { TSchema } from "@sinclair/typebox";
import { childrenOf, pointer, schemaAt } from "./schema.ts";

export const ENV_PREFIX = "SECUMON_";
const NOT_CONFIG = new Set(["SECUMON_CONFIG", "SECUMON_NATS_SERVER_BIN", "SECUMON_WIREGUARD_GO_BIN"]);
const isNotConfig = (name: string) => NOT_CONFIG.has(name) || name.startsWith("SECUMON_TEST_");
const ALIASES: Record<string, string> = { SECUMON_LOG_LEVEL: "SECUMON_LOGGING__LEVEL" };

/** The variable that sets the key at `path` (`["api", "port"]` → `SECUMON_API__PORT`). */
export const envName = (path: readonly string[]): string => ENV_PREFIX + path.join("__").toUpperCase();

export interface EnvOverrides {
  /** A partial document to merge over the file. */
  values: Record<string, unknown>;
  /** Which variable set each JSON pointer, so later problems can name it. */
  sources: Map<string, string>;
  problems: string[];
}

export function envOverrides(env: Record<string, string | undefined>): EnvOverrides {
  const out: EnvOverrides = { values: {}, sources: new Map(), problems: [] };
  const names = Object.keys(env)
    .filter((n) => n.startsWith(ENV_PREFIX) && !isNotConfig(n) && env[n] !== undefined)
    // Aliases first, so the canonical name, applied later, wins.
    .sort((a, b) => Number(b in ALIASES) - Number(a in ALIASES) || a.localeCompare(b));
  for (const name of names) {
    const canonical = ALIASES[name] ?? name;
    const path = canonical.slice(ENV_PREFIX.length).toLowerCase().split("__");
    const schema = schemaAt(path);
    if (!schema || path.some((p) => p === "")) {
      out.problems.push(`${name}: ${unknownVariable(path)}`);
      continue;
    }
    if (childrenOf(schema)) {
      const example = envName([...path, Object.keys(childrenOf(schema) ?? {})[0] ?? "key"]);
      out.problems.push(
        `${name}: ${pointer(path)} is a section; set one of its keys instead, e.g. ${example}`,
      );
      continue;
    }
    const coerced = coerce(schema, env[name] ?? "");
    if ("error" in coerced) {
      out.problems.push(`${name}: ${coerced.error}`);
      continue;
    }
    setIn(out.values, path, coerced.value);
    out.sources.set(pointer(path), name);
  }
  return out;
}

function unknownVariable(path: string[]): string {
  let depth = 0;
  while (depth < path.length && schemaAt(path.slice(0, depth + 1))) depth++;
  const parent = path.slice(0, depth);
  const known = Object.keys(childrenOf(schemaAt(parent)) ?? {});
  const where = parent.length === 0 ? "at the top level" : `under ${pointer(parent)}`;
  return `unknown setting (no key ${pointer(path)}); keys ${where}: ${known.join(", ")}`;
}

type Coerced = { value: unknown } | { error: string };

function coerce(schema: TSchema, raw: string): Coerced {
  switch (schema.type) {
    case "integer":
      return /^-?\d+$/.test(raw.trim())
        ? { value: Number(raw.trim()) }
        : { error: `expected integer, got "${raw}"` };
    case "boolean": {
      const v = raw.trim().toLowerCase();
      if (["true", "1", "yes", "on"].includes(v)) return { value: true };
      if (["false", "0", "no", "off"].includes(v)) return { value: false };
      return { error: `expected true or false, got "${raw}"` };
    }
    case "array":
      return { value: raw.trim() === "" ? [] : raw.split(",").map((s) => s.trim()) };
    default:
      return { value: raw };
  }
}

/** Sets `obj[path[0]][path[1]]… = value`, creating mappings on the way. */
export function setIn(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}
