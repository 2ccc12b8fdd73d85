import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, exitCodeFor } from "../lib/errors.ts";
import { loadConfig } from "./load.ts";
import type { Config, ConfigOverrides } from "./schema.ts";
import { REDACTED, redact, resolveSecrets } from "./secrets.ts";

const tmp = mkdtempSync(join(tmpdir(), "secumon-secrets-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const config = (overrides: ConfigOverrides): Config => loadConfig({ env: {}, overrides });

async function failure(p: Promise<unknown>): Promise<ConfigError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).code).toBe("SECRET_UNRESOLVED");
    expect(exitCodeFor(e)).toBe(2);
    return e as ConfigError;
  }
  throw new Error("expected resolution to fail");
}

describe("env: and file: references", () => {
  test("are replaced by their values; literals and empty fields stay; the input is not changed", async () => {
    const file = join(tmp, "slack");
    writeFileSync(file, "https://hooks.slack.example/T000/B000\r\n\n");
    const c = config({
      api: { auth: { jwt_secret: "env:JWT" } },
      redis: { url: "redis://literal:6379" },
      alerter: { notifications: { slack: { webhook_url: `file:${file}` } } },
    });
    const r = await resolveSecrets(c, { env: { JWT: "jwt-value-1" } });
    expect(r.api.auth.jwt_secret).toBe("jwt-value-1");
    expect(r.alerter.notifications.slack.webhook_url).toBe("https://hooks.slack.example/T000/B000");
    expect(r.redis.url).toBe("redis://literal:6379");
    expect(r.database.url).toBe("");
    expect(c.api.auth.jwt_secret).toBe("env:JWT");
  });

  test("every failure is reported together, naming the variable or path and never a value", async () => {
    mkdirSync(join(tmp, "dir"), { recursive: true });
    writeFileSync(join(tmp, "empty"), "\n");
    const c = config({
      api: {
        auth: {
          jwt_secret: "env:MISSING_JWT",
          jumpcloud: { client_id: "env:EMPTY_ID", client_secret: "env:GOOD" },
        },
      },
      database: { url: `file:${join(tmp, "absent")}` },
      redis: { url: `file:${join(tmp, "dir")}` },
      uplink: { enrollment_token: `file:${join(tmp, "empty")}` },
    });
    const err = await failure(resolveSecrets(c, { env: { EMPTY_ID: "", GOOD: "good-secret-value" } }));
    // In document order, whatever order the reads finish in.
    expect(err.problems).toEqual([
      "/api/auth/jwt_secret: env:MISSING_JWT: environment variable MISSING_JWT is not set: export it before starting",
      "/api/auth/jumpcloud/client_id: env:EMPTY_ID: environment variable EMPTY_ID is empty: give it the secret's value",
      `/database/url: file:${join(tmp, "absent")}: file ${join(tmp, "absent")} does not exist: create it or fix the path`,
      `/redis/url: file:${join(tmp, "dir")}: file ${join(tmp, "dir")} is a directory: name the file that holds the secret`,
      `/uplink/enrollment_token: file:${join(tmp, "empty")}: file ${join(tmp, "empty")} is empty: write the secret into it`,
    ]);
    expect(err.message).not.toContain("good-secret-value");
  });

  test("a malformed reference in a hand-built config is reported without echoing it", async () => {
    const c = config({});
    c.api.auth.jwt_secret = "env:not a name";
    const err = await failure(resolveSecrets(c, { env: {} }));
    expect(err.problems).toEqual([
      "/api/auth/jwt_secret: an env: reference needs a variable name, as in env:JWT_SECRET",
    ]);
  });
});

describe("redact", () => {
  test("hides literal secrets, shows references, leaves empty fields and other keys alone", () => {
    const c = config({
      api: { auth: { jwt_secret: "literal-jwt" } },
      database: { url: "postgres://u:pw@db/secumon" },
      redis: { url: "env:REDIS_URL" },
      secrets: {
        ovh: { endpoint: "https://okms.test", okms_id: "id", token: "file:/etc/secumon/ovh-token" },
      },
      alerter: { notifications: { slack: { webhook_url: "ovh://secrets/slack#url" } } },
    });
    const r = redact(c);
    expect(r.api.auth.jwt_secret).toBe(REDACTED);
    expect(r.database.url).toBe(REDACTED);
    expect(r.redis.url).toBe("env:REDIS_URL");
    expect(r.secrets.ovh.token).toBe("file:/etc/secumon/ovh-token");
    expect(r.alerter.notifications.slack.webhook_url).toBe("ovh://secrets/slack#url");
    expect(r.alerter.notifications.email.password).toBe("");
    expect(r.api.port).toBe(8080);
    expect(c.api.auth.jwt_secret).toBe("literal-jwt");
    expect(JSON.stringify(r)).not.toContain("pw@db");
  });

  test("hides every value of a resolved config, even one that looks like a reference", async () => {
    const c = config({ api: { auth: { jwt_secret: "env:JWT" } }, redis: { url: "env:REDIS" } });
    const resolved = await resolveSecrets(c, {
      env: { JWT: "env:looks-like-a-ref", REDIS: "redis://r:6379" },
    });
    const r = redact(resolved);
    expect(r.api.auth.jwt_secret).toBe(REDACTED);
    expect(r.redis.url).toBe(REDACTED);
  });
});

describe("ovh:// references (fake fetch; real HTTPS in test/config/ovh.test.ts)", () => {
  const ovh = {
    endpoint: "https://okms.test",
    okms_id: "11111111-2222-3333-4444-555555555555",
    token: "env:OKMS_TOKEN",
  };
  const TOKEN = "pat-token-0123456789";

  function fakeOkms(secrets: Record<string, Record<string, unknown>>) {
    const urls: string[] = [];
    const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(String(input));
      urls.push(url.pathname + url.search);
      if (new Headers(init?.headers).get("authorization") !== `Bearer ${TOKEN}`) {
        return Response.json(
          { error_code: 1, errors: ["unauthorized"], request_id: "req-1" },
          { status: 401 },
        );
      }
      const path = decodeURIComponent(url.pathname.split("/v2/secret/")[1] ?? "");
      const data = secrets[path];
      if (!data)
        return Response.json({ error_code: 2, errors: ["not found"], request_id: "req-2" }, { status: 404 });
      if (data.forbidden) return Response.json({ errors: ["denied"] }, { status: 403 });
      if (data.broken) return new Response("oops", { status: 502 });
      return Response.json({
        path,
        metadata: { currentVersion: 1 },
        version: { id: 1, state: "active", data },
      });
    }) as typeof globalThis.fetch;
    return { fetch, urls };
  }

  test("reads the key named after #, or the only key; one request per secret path", async () => {
    const okms = fakeOkms({
      "prod/smtp": { user: "alerts", password: "smtp-pass-1" },
      "prod/jwt": { value: "jwt-2" },
    });
    const c = config({
      secrets: { ovh },
      api: { auth: { jwt_secret: "ovh://secrets/prod/jwt" } },
      alerter: { notifications: { email: { password: "ovh://secrets/prod/smtp#password" } } },
      uplink: { enrollment_token: "ovh://secrets/prod/smtp#user" },
    });
    const r = await resolveSecrets(c, { env: { OKMS_TOKEN: TOKEN }, fetch: okms.fetch });
    expect(r.api.auth.jwt_secret).toBe("jwt-2");
    expect(r.alerter.notifications.email.password).toBe("smtp-pass-1");
    expect(r.uplink.enrollment_token).toBe("alerts");
    expect(r.secrets.ovh.token).toBe(TOKEN);
    expect(okms.urls.sort()).toEqual([
      `/api/${ovh.okms_id}/v2/secret/prod%2Fjwt?includeData=true`,
      `/api/${ovh.okms_id}/v2/secret/prod%2Fsmtp?includeData=true`,
    ]);
  });

  test("key and status problems say what to do, per field; token problems once", async () => {
    const okms = fakeOkms({
      multi: { a: "1", b: "2" },
      nested: { obj: { deep: true } },
      locked: { forbidden: true },
      flaky: { broken: true },
    });
    const c = config({
      secrets: { ovh },
      api: { auth: { jwt_secret: "ovh://secrets/multi", jumpcloud: { client_id: "ovh://secrets/multi#c" } } },
      database: { url: "ovh://secrets/nested#obj" },
      redis: { url: "ovh://secrets/absent" },
      uplink: { enrollment_token: "ovh://secrets/locked" },
      alerter: { notifications: { slack: { webhook_url: "ovh://secrets/flaky" } } },
    });
    const err = await failure(resolveSecrets(c, { env: { OKMS_TOKEN: TOKEN }, fetch: okms.fetch }));
    expect(err.problems).toEqual([
      '/api/auth/jwt_secret: ovh://secrets/multi: secret "multi" holds several keys (a, b): name one, as in ovh://secrets/multi#a',
      '/api/auth/jumpcloud/client_id: ovh://secrets/multi#c: secret "multi" has no key "c"; its keys: a, b',
      '/database/url: ovh://secrets/nested#obj: key "obj" of secret "nested" is not a string: store the secret as a string',
      `/redis/url: ovh://secrets/absent: secret "absent" was not found in OKMS domain ${ovh.okms_id} (HTTP 404, request id req-2): create it in OVHcloud Secret Manager, or fix the reference or /secrets/ovh/okms_id`,
      '/secrets/ovh: OVH Secret Manager answered HTTP 502 for secret "flaky": retry later',
      '/uplink/enrollment_token: ovh://secrets/locked: OVH Secret Manager denied access to secret "locked" (HTTP 403): grant the token\'s identity okms:apikms:secret/get and okms:apikms:secret/version/getData on it',
    ]);

    const bad = await failure(
      resolveSecrets(c, { env: { OKMS_TOKEN: "wrong-token-xyz" }, fetch: okms.fetch }),
    );
    expect(bad.problems).toEqual([
      "/secrets/ovh: OVH Secret Manager refused the token (HTTP 401, request id req-1): set /secrets/ovh/token to a valid, unexpired personal access token",
    ]);
    expect(bad.message).not.toContain("wrong-token-xyz");
  });

  test("an unresolvable token or missing OVH settings are reported once, and no request is made", async () => {
    const okms = fakeOkms({});
    const c = config({
      secrets: { ovh: { ...ovh, token: "env:NOT_SET" } },
      api: { auth: { jwt_secret: "ovh://secrets/jwt" } },
      redis: { url: "ovh://secrets/redis" },
    });
    const err = await failure(resolveSecrets(c, { env: {}, fetch: okms.fetch }));
    expect(err.problems).toEqual([
      "/secrets/ovh/token: env:NOT_SET: environment variable NOT_SET is not set: export it before starting",
    ]);
    // loadConfig rejects missing OVH settings; resolveSecrets checks them again for hand-built configs.
    c.secrets.ovh.token = "literal-token";
    c.secrets.ovh.okms_id = "";
    const err2 = await failure(resolveSecrets(c, { env: {}, fetch: okms.fetch }));
    expect(err2.problems).toEqual(["/secrets/ovh/okms_id: required because a secret uses ovh://secrets/..."]);
    expect(okms.urls).toEqual([]);
  });
});
