/**
 * `ovh://secrets/...` against a local HTTPS server speaking OVHcloud Secret Manager's documented REST API
 * (OKMS `GET /api/{okmsId}/v2/secret/{path}?includeData=true`, bearer token; see src/config/ovh.ts). The
 * server's certificate is generated for this run with the openssl CLI into a temporary directory and trusted
 * through `secrets.ovh.ca_file`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { resolveSecrets } from "../../src/config/secrets.ts";
import { ConfigError } from "../../src/lib/errors.ts";

const OKMS_ID = "734b9b45-8b1a-469c-b140-b10bd6540017";
const TOKEN = "eyJ-test-personal-access-token-5f3c9a";
const SECRETS: Record<string, Record<string, string>> = {
  "prod/timescale": { user: "okms-user-61f0a7", password: "pg-password-7d1e2b" },
  "jwt-secret": { value: "jwt-signing-key-94c0aa" },
};
const SECRET_VALUES = [TOKEN, ...Object.values(SECRETS).flatMap((s) => Object.values(s))];

interface Seen {
  method: string;
  path: string;
  includeData: string | null;
  authorization: string | null;
}

let dir: string;
let server: ReturnType<typeof Bun.serve>;
let endpoint: string;
const seen: Seen[] = [];
/** Every message thrown in this file, checked at the end for leaked secrets. */
const messages: string[] = [];

function errorResponse(status: number, message: string): Response {
  const body = {
    error_id: `E${status}`,
    error_code: status * 100,
    errors: [message],
    request_id: `req-${status}`,
  };
  return Response.json(body, { status });
}

async function okms(req: Request): Promise<Response> {
  const url = new URL(req.url);
  const m = /^\/api\/([^/]+)\/v2\/secret\/(.+)$/.exec(url.pathname);
  const path = m ? decodeURIComponent(m[2]!) : "";
  seen.push({
    method: req.method,
    path,
    includeData: url.searchParams.get("includeData"),
    authorization: req.headers.get("authorization"),
  });
  if (req.headers.get("authorization") !== `Bearer ${TOKEN}`) return errorResponse(401, "invalid token");
  if (!m || req.method !== "GET" || m[1] !== OKMS_ID) return errorResponse(404, "not found");
  if (path.startsWith("slow/")) await Bun.sleep(3000);
  const data = SECRETS[path];
  if (!data) return errorResponse(404, "secret not found");
  const version = { id: 3, state: "active", createdAt: "2025-07-02T15:04:05+02:00" };
  return Response.json({
    path,
    metadata: {
      currentVersion: 3,
      oldestVersion: 1,
      casRequired: false,
      urn: `urn:v1:eu:resource:okms:${OKMS_ID}`,
    },
    version: url.searchParams.get("includeData") === "true" ? { ...version, data } : version,
  });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "secumon-okms-"));
  const openssl = Bun.spawnSync(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
      "-days",
      "1",
      "-subj",
      "/CN=okms.test",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ],
    { stderr: "pipe" },
  );
  if (openssl.exitCode !== 0) throw new Error(`openssl failed: ${openssl.stderr.toString()}`);
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: {
      cert: readFileSync(join(dir, "cert.pem"), "utf8"),
      key: readFileSync(join(dir, "key.pem"), "utf8"),
    },
    fetch: okms,
  });
  endpoint = `https://127.0.0.1:${server.port}`;
});

afterAll(() => {
  server?.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

interface Setup {
  env?: Record<string, string>;
  caFile?: string;
}

/** Loads a config file as `serve` would, then resolves its secrets. */
async function resolve(
  yaml: string,
  { env = { OKMS_TOKEN: TOKEN }, caFile = join(dir, "cert.pem") }: Setup = {},
) {
  const file = join(dir, "collector.yaml");
  writeFileSync(
    file,
    `secrets:\n  ovh:\n    endpoint: ${endpoint}\n    okms_id: ${OKMS_ID}\n    token: env:OKMS_TOKEN\n    ca_file: "${caFile}"\n${yaml}`,
  );
  return resolveSecrets(loadConfig({ file, env: {} }), { env });
}

async function problems(yaml: string, setup?: Setup): Promise<string[]> {
  try {
    await resolve(yaml, setup);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    messages.push((e as Error).message);
    return (e as ConfigError).problems;
  }
  throw new Error("expected resolution to fail");
}

describe("OVH Secret Manager over HTTPS", () => {
  test("resolves secrets with the bearer token, one GET per secret, data included", async () => {
    seen.length = 0;
    const c = await resolve(
      [
        "database:\n  url: ovh://secrets/prod/timescale#password",
        "api:\n  auth:\n    jwt_secret: ovh://secrets/jwt-secret",
        "uplink:\n  enrollment_token: ovh://secrets/prod/timescale#user\n",
      ].join("\n"),
    );
    expect(c.database.url).toBe("pg-password-7d1e2b");
    expect(c.api.auth.jwt_secret).toBe("jwt-signing-key-94c0aa");
    expect(c.uplink.enrollment_token).toBe("okms-user-61f0a7");
    expect(seen.sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { method: "GET", path: "jwt-secret", includeData: "true", authorization: `Bearer ${TOKEN}` },
      { method: "GET", path: "prod/timescale", includeData: "true", authorization: `Bearer ${TOKEN}` },
    ]);
  });

  test("401: the token is refused; the message says to fix it and does not show it", async () => {
    expect(
      await problems("redis:\n  url: ovh://secrets/jwt-secret\n", {
        env: { OKMS_TOKEN: "expired-token-1c2d3e" },
      }),
    ).toEqual([
      "/secrets/ovh: OVH Secret Manager refused the token (HTTP 401, request id req-401): set /secrets/ovh/token to a valid, unexpired personal access token",
    ]);
    expect(messages.at(-1)).not.toContain("expired-token-1c2d3e");
  });

  test("404: the secret is named with the OKMS domain, and the other secrets still resolve", async () => {
    expect(
      await problems(
        "redis:\n  url: ovh://secrets/prod/redis\napi:\n  auth:\n    jwt_secret: ovh://secrets/jwt-secret\n",
      ),
    ).toEqual([
      `/redis/url: ovh://secrets/prod/redis: secret "prod/redis" was not found in OKMS domain ${OKMS_ID} (HTTP 404, request id req-404): create it in OVHcloud Secret Manager, or fix the reference or /secrets/ovh/okms_id`,
    ]);
  });

  test("timeout: a silent endpoint fails within secrets.ovh.timeout, saying what to check", async () => {
    const started = performance.now();
    const found = await problems("    timeout: 300ms\nredis:\n  url: ovh://secrets/slow/redis\n");
    expect(performance.now() - started).toBeLessThan(2500);
    expect(found).toEqual([
      `/secrets/ovh: no answer from ${endpoint} within 300 ms: check that this machine can reach it (firewall, proxy, DNS), or raise /secrets/ovh/timeout`,
    ]);
  });

  test("an endpoint whose certificate is not trusted points at secrets.ovh.ca_file", async () => {
    const found = await problems("redis:\n  url: ovh://secrets/jwt-secret\n", { caFile: "" });
    expect(found).toHaveLength(1);
    expect(found[0]).toStartWith(`/secrets/ovh: cannot verify the TLS certificate of ${endpoint} (`);
    expect(found[0]).toEndWith(
      "): set /secrets/ovh/ca_file to the CA that signs it, or fix /secrets/ovh/endpoint",
    );
  });

  test("a ca_file that cannot be read is named, and no request is made", async () => {
    seen.length = 0;
    const caFile = join(dir, "missing-ca.pem");
    expect(await problems("redis:\n  url: ovh://secrets/jwt-secret\n", { caFile })).toEqual([
      `/secrets/ovh/ca_file: file ${caFile} does not exist: create it or fix the path`,
    ]);
    expect(seen).toEqual([]);
  });

  test("an endpoint that refuses connections is reported as unreachable", async () => {
    const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const port = closed.port;
    closed.stop(true);
    const file = join(dir, "closed.yaml");
    writeFileSync(
      file,
      `secrets:\n  ovh:\n    endpoint: https://127.0.0.1:${port}\n    okms_id: ${OKMS_ID}\n    token: ${TOKEN}\nredis:\n  url: ovh://secrets/x\n`,
    );
    let err: unknown;
    await resolveSecrets(loadConfig({ file, env: {} }), { env: {} }).catch((e) => {
      err = e;
    });
    expect(err).toBeInstanceOf(ConfigError);
    messages.push((err as Error).message);
    expect((err as ConfigError).problems).toEqual([
      `/secrets/ovh: cannot reach https://127.0.0.1:${port} (ECONNREFUSED): check /secrets/ovh/endpoint and the network`,
    ]);
  });

  // Runs last (tests in a file run in order).
  test("no error message above carried the token or a secret value", () => {
    expect(messages.length).toBeGreaterThanOrEqual(6);
    for (const m of messages) for (const v of SECRET_VALUES) expect(m).not.toContain(v);
  });
});
