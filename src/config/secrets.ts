/**
 * Secret resolution at start-up, and redaction for display.
 *
 * `resolveSecrets` returns a copy of the configuration in which every `Secret()` field holding a reference
 * (`env:NAME`, `file:/path`, `ovh://secrets/PATH[#KEY]`, see refs.ts) holds the secret itself. Every failure is
 * collected and reported together in one ConfigError with code SECRET_UNRESOLVED; the messages name the field,
 * the variable, the file or the secret path, never a secret value or the OVH token.
 *
 * `redact` prepares a configuration for display (`check-config`): a literal secret becomes "[redacted]";
 * a reference is shown as written, since `env:JWT_SECRET` tells the operator where the secret comes from and
 * is not itself secret. A configuration returned by `resolveSecrets` is redacted entirely, whatever its
 * values look like.
 */
import { readFile } from "node:fs/promises";
import { ConfigError } from "../lib/errors.ts";
import { getOkmsSecretData, OkmsError } from "./ovh.ts";
import { isReference, parseSecretRef, type SecretRef } from "./refs.ts";
import { type Config, parseDuration, pointer, SECRET_PATHS } from "./schema.ts";

export const REDACTED = "[redacted]";

export interface ResolveOptions {
  /** HTTP client for OVH Secret Manager; the global fetch by default. */
  fetch?: typeof fetch;
  /** Where `env:` references look; process.env by default. */
  env?: Record<string, string | undefined>;
}

/** Configurations whose secrets hold resolved values: `redact` hides all of them. */
const resolvedConfigs = new WeakSet<object>();

type Env = Record<string, string | undefined>;
const TOKEN_PATH = ["secrets", "ovh", "token"] as const;
/** Thrown for an ovh:// field when OVH is unusable: the reason is already reported under /secrets/ovh. */
class Skipped extends Error {}

export async function resolveSecrets(config: Config, opts: ResolveOptions = {}): Promise<Config> {
  const env = opts.env ?? process.env;
  const out = structuredClone(config);
  const problems = new Set<string>();
  const secretValues: string[] = [];

  /** Resolves the field at `path` in `out`; returns the problem, if any (ovh:// skips return ""). */
  const resolveField = async (path: readonly string[], read: (ref: SecretRef) => Promise<string>) => {
    const current = getIn(out, path);
    const ref = parseSecretRef(current);
    if (ref.kind === "empty") return undefined;
    if (ref.kind === "literal") {
      secretValues.push(current);
      return undefined;
    }
    // An invalid reference is not echoed: it may be a mistyped literal secret.
    if (ref.kind === "invalid") return `${pointer(path)}: ${ref.problem}`;
    try {
      const value = await read(ref);
      secretValues.push(value);
      setIn(out, path, value);
      return undefined;
    } catch (e) {
      if (e instanceof Skipped) return "";
      if (e instanceof OkmsError && e.scope === "endpoint") return `/secrets/ovh: ${e.message}`;
      return `${pointer(path)}: ${current}: ${(e as Error).message}`;
    }
  };

  // The OVH token first: ovh:// references need it.
  const tokenProblem = await resolveField(TOKEN_PATH, (ref) => readLocal(ref, env));
  if (tokenProblem) problems.add(tokenProblem);
  const ovh = tokenProblem ? undefined : await ovhReader(out, opts.fetch, problems);
  const fieldProblems = await Promise.all(
    SECRET_PATHS.filter((p) => pointer(p) !== pointer(TOKEN_PATH)).map((path) =>
      resolveField(path, (ref) => {
        if (ref.kind !== "ovh") return readLocal(ref, env);
        return ovh ? ovh(ref.path, ref.key) : Promise.reject(new Skipped());
      }),
    ),
  );
  // In document order; a problem shared by several fields (bad token, endpoint down) once.
  for (const p of fieldProblems) if (p) problems.add(p);
  if (problems.size > 0) {
    throw new ConfigError(
      [...problems].map((p) => scrub(p, secretValues)),
      { code: "SECRET_UNRESOLVED" },
    );
  }
  resolvedConfigs.add(out);
  return out;
}

/** Resolves an `env:` or `file:` reference. */
async function readLocal(ref: SecretRef, env: Env): Promise<string> {
  if (ref.kind === "env") {
    const v = env[ref.name];
    if (v === undefined)
      throw new Error(`environment variable ${ref.name} is not set: export it before starting`);
    if (v === "") throw new Error(`environment variable ${ref.name} is empty: give it the secret's value`);
    return v;
  }
  if (ref.kind === "file") {
    const v = (await readSecretFile(ref.path)).replace(/(\r?\n)+$/, "");
    if (v === "") throw new Error(`file ${ref.path} is empty: write the secret into it`);
    return v;
  }
  throw new Error("the OVH token cannot itself come from OVH: use env:NAME or file:/path");
}

async function readSecretFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "does not exist: create it or fix the path"
        : code === "EACCES"
          ? "is not readable by the collector's user: fix its owner or mode (0400 or 0440)"
          : code === "EISDIR"
            ? "is a directory: name the file that holds the secret"
            : `cannot be read (${code ?? "error"})`;
    throw new Error(`file ${path} ${why}`);
  }
}

type OvhRead = (path: string, key: string | undefined) => Promise<string>;

/**
 * A reader for `ovh://` references, given a resolved token; undefined when none are used or the OVH settings
 * are unusable (the reason is then added to `problems`). One request per secret path, shared by the fields
 * that name it.
 */
async function ovhReader(c: Config, fetchImpl: typeof fetch | undefined, problems: Set<string>) {
  const o = c.secrets.ovh;
  if (!SECRET_PATHS.some((p) => parseSecretRef(getIn(c, p)).kind === "ovh")) return undefined;
  for (const key of ["endpoint", "okms_id", "token"] as const) {
    if (o[key] === "") problems.add(`/secrets/ovh/${key}: required because a secret uses ovh://secrets/...`);
  }
  let ca: string | undefined;
  if (o.ca_file !== "") {
    ca = await readSecretFile(o.ca_file).catch((e: Error) => {
      problems.add(`/secrets/ovh/ca_file: ${e.message}`);
      return undefined;
    });
  }
  if (o.endpoint === "" || o.okms_id === "" || o.token === "" || (o.ca_file !== "" && ca === undefined)) {
    return undefined;
  }
  const client = {
    endpoint: o.endpoint,
    okmsId: o.okms_id,
    token: o.token,
    ca,
    timeoutMs: parseDuration(o.timeout),
    fetch: fetchImpl,
  };
  const cache = new Map<string, Promise<Record<string, unknown>>>();
  const read: OvhRead = async (path, key) => {
    const data = cache.get(path) ?? getOkmsSecretData(client, path);
    cache.set(path, data);
    return pickKey(await data, path, key);
  };
  return read;
}

function pickKey(data: Record<string, unknown>, path: string, key: string | undefined): string {
  const keys = Object.keys(data);
  if (key === undefined && keys.length !== 1) {
    throw new Error(
      keys.length === 0
        ? `secret "${path}" holds no keys: add one in OVHcloud Secret Manager`
        : `secret "${path}" holds several keys (${keys.join(", ")}): name one, as in ovh://secrets/${path}#${keys[0]}`,
    );
  }
  const k = key ?? keys[0]!;
  if (!Object.hasOwn(data, k))
    throw new Error(`secret "${path}" has no key "${k}"; its keys: ${keys.join(", ")}`);
  const v = data[k];
  if (typeof v === "string" && v !== "") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new Error(
    `key "${k}" of secret "${path}" is ${v === "" ? "empty" : "not a string"}: store the secret as a string`,
  );
}

/** Replaces any secret value that slipped into a message (defence in depth: messages are built without them). */
function scrub(message: string, values: string[]): string {
  let m = message;
  for (const v of values) if (v.length >= 4) m = m.split(v).join(REDACTED);
  return m;
}

export function redact(config: Config): Config {
  const out = structuredClone(config);
  const all = resolvedConfigs.has(config);
  for (const path of SECRET_PATHS) {
    const v = getIn(out, path);
    if (v !== "" && (all || !isReference(v))) setIn(out, path, REDACTED);
  }
  return out;
}

function getIn(c: Config, path: readonly string[]): string {
  return path.reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], c) as string;
}

function setIn(c: Config, path: readonly string[], value: string): void {
  const parent = path.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], c);
  (parent as Record<string, unknown>)[path[path.length - 1]!] = value;
}
