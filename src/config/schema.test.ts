import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { TSchema } from "@sinclair/typebox";
import { loadConfig } from "./load.ts";
import { renderReference } from "./reference.ts";
import { ConfigSchema, childrenOf, leaves, parseDuration, SECRET_PATHS } from "./schema.ts";

describe("parseDuration", () => {
  test.each([
    ["500ms", 500],
    ["0s", 0],
    ["30s", 30_000],
    ["5m", 300_000],
    ["72h", 259_200_000],
    ["30d", 2_592_000_000],
  ])("%s = %d ms", (s, ms) => expect(parseDuration(s)).toBe(ms));

  test.each(["", "30", "1.5s", "-1s", "1h30m", "30 s", "5w", "s"])("rejects %p", (s) => {
    expect(() => parseDuration(s)).toThrow(/expected a whole number followed by ms, s, m, h or d/);
  });
});

describe("ConfigSchema", () => {
  test("secret fields are found by walking the schema", () => {
    expect(SECRET_PATHS.map((p) => p.join("."))).toEqual([
      "api.auth.jwt_secret",
      "api.auth.jumpcloud.client_id",
      "api.auth.jumpcloud.client_secret",
      "api.auth.oidc.client_id",
      "api.auth.oidc.client_secret",
      "database.url",
      "redis.url",
      "alerter.notifications.email.password",
      "alerter.notifications.slack.webhook_url",
      "alerter.notifications.sms.auth_token",
      "uplink.enrollment_token",
      "security.encryption_key",
      "secrets.ovh.token",
    ]);
  });

  test("every object rejects unknown keys and every key has a default and a description", () => {
    const objects: string[] = [];
    const walk = (s: TSchema, at: string) => {
      const kids = childrenOf(s);
      if (!kids) return;
      if (s.additionalProperties !== false) objects.push(at);
      for (const [k, v] of Object.entries(kids)) walk(v, `${at}/${k}`);
    };
    walk(ConfigSchema, "");
    expect(objects).toEqual([]);
    const incomplete = leaves()
      .filter((l) => l.schema.default === undefined || !l.schema.description)
      .map((l) => l.path.join("."));
    expect(incomplete).toEqual([]);
  });

  test("defaults: a working single node on loopback that avoids the system NATS and PostgreSQL ports", () => {
    const c = loadConfig({ env: {} });
    expect(c.data_dir).toBe("./data");
    expect(c.roles).toEqual(["gateway", "ingestion", "alerter", "api", "wgmanager", "maintenance"]);
    expect([c.api.host, c.api.port, c.gateway.host, c.gateway.grpc_port]).toEqual([
      "127.0.0.1",
      8080,
      "127.0.0.1",
      9443,
    ]);
    expect([c.nats.url, c.nats.port, c.nats.sync_interval]).toEqual(["", 14222, "always"]);
    expect([c.database.url, c.database.embedded.port]).toEqual(["", 15432]);
    expect(c.api.cors.allowed_headers).toContain("X-Tenant-ID");
    expect(c.gateway.max_message_bytes).toBe(4 * 1024 * 1024);
    expect(c.gateway.max_uncompressed_bytes).toBe(64 * 1024 * 1024);
    expect(c.wireguard.enabled).toBe(false);
    expect(c.secrets.ovh.token).toBe("");
  });

  test("defaults are fresh copies: changing one loaded config does not change the next", () => {
    const a = loadConfig({ env: {} });
    a.roles.push("uplink");
    a.api.cors.allowed_methods.length = 0;
    const b = loadConfig({ env: {} });
    expect(b.roles).not.toContain("uplink");
    expect(b.api.cors.allowed_methods).toHaveLength(5);
  });
});

test("REFERENCE.md is the rendering of the schema (regenerate: bun src/config/reference.ts)", () => {
  const committed = readFileSync(new URL("./REFERENCE.md", import.meta.url), "utf8");
  expect(committed).toBe(renderReference());
  for (const l of leaves()) expect(committed).toContain(`\`${l.path.join(".")}\``);
});
