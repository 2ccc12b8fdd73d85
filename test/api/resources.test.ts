/**
 * SNMP credentials, alert rules, notification channels (with a test notification delivered by the alerter's
 * real delivery worker to a local webhook receiver), alerts, acknowledgements and silences: what each route
 * stores, what it never returns, and how it refuses bad input. The route × caller matrix is matrix.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { channelConfigContext } from "../../src/alerter/notify/channels.ts";
import { createDelivery, type Delivery } from "../../src/alerter/notify/worker.ts";
import { snmpSecretContext } from "../../src/api/routes/snmp.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { type Harness, harness, login, seedTenant, seedUser } from "./harness.ts";

let h: Harness;
let tenant: string;
let admin: string;
let operator: string;
let otherTenant: string;

beforeAll(async () => {
  h = await harness();
  tenant = await seedTenant(h, "res-a");
  otherTenant = await seedTenant(h, "res-b");
  await seedUser(h, "admin@res.test", "admin", tenant);
  await seedUser(h, "op@res.test", "operator", tenant);
  admin = (await login(h, "admin@res.test")).access_token;
  operator = (await login(h, "op@res.test")).access_token;
});

const auditText = async (id: string) =>
  JSON.stringify(await h.deps.sql`select old_value, new_value from audit_logs where resource_id = ${id}`);

describe("SNMP credentials", () => {
  test("v3 secrets are sealed, never returned, never audited; switching version clears what it does not use", async () => {
    const c = await h.call("POST", "/api/v1/snmp-credentials", {
      token: admin,
      body: {
        name: "core-switches",
        version: "v3",
        v3_username: "monitor",
        v3_auth_proto: "SHA256",
        v3_auth_pass: "auth-passphrase-1",
        v3_priv_proto: "AES",
        v3_priv_pass: "priv-passphrase-1",
      },
    });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({
      version: "v3",
      has_auth_pass: true,
      has_priv_pass: true,
      has_community: false,
    });
    expect(JSON.stringify(c.body)).not.toContain("passphrase");
    const id = c.body.id as string;
    const [row] = await h.deps
      .sql`select v3_auth_pass_encrypted, v3_priv_pass_encrypted from snmp_credentials where id = ${id}`;
    expect(h.deps.keyring.openText(row?.v3_auth_pass_encrypted, snmpSecretContext("v3_auth_pass", id))).toBe(
      "auth-passphrase-1",
    );
    expect(() =>
      h.deps.keyring.openText(row?.v3_auth_pass_encrypted, snmpSecretContext("v3_priv_pass", id)),
    ).toThrow();

    const g = await h.call("GET", `/api/v1/snmp-credentials/${id}`, { token: operator });
    expect(JSON.stringify(g.body)).not.toContain("passphrase");
    expect(Object.keys(g.body).some((k) => k.endsWith("_encrypted"))).toBe(false);

    const noCommunity = await h.call("PATCH", `/api/v1/snmp-credentials/${id}`, {
      token: admin,
      body: { version: "v2c" },
    });
    expect(noCommunity.status).toBe(422);
    const v2 = await h.call("PATCH", `/api/v1/snmp-credentials/${id}`, {
      token: admin,
      body: { version: "v2c", community: "s3cret-community" },
    });
    expect(v2.status).toBe(200);
    expect(v2.body).toMatchObject({
      version: "v2c",
      has_community: true,
      has_auth_pass: false,
      v3_username: null,
    });
    expect(await auditText(id)).not.toMatch(/passphrase|s3cret-community/);

    const v3bad = await h.call("POST", "/api/v1/snmp-credentials", {
      token: admin,
      body: { name: "x", version: "v3", v3_username: "u", v3_priv_proto: "AES", v3_priv_pass: "p" },
    });
    expect(v3bad.status).toBe(422); // privacy without authentication
    const dup = await h.call("POST", "/api/v1/snmp-credentials", {
      token: admin,
      body: { name: "core-switches", version: "v1", community: "c" },
    });
    expect(dup.status).toBe(409);
  });
});

describe("alert rules", () => {
  const rule = (extra: Record<string, unknown> = {}) => ({
    name: `cpu high ${crypto.randomUUID().slice(0, 6)}`,
    severity: "critical",
    type: "threshold",
    for_duration: "5m",
    conditions: { conditions: [{ metric: "system.cpu_usage", operator: "gt", threshold: 90, window: "5m" }] },
    ...extra,
  });
  const channel = async (tenantId = tenant) => {
    const id = crypto.randomUUID();
    const sealed = h.deps.keyring.seal(JSON.stringify({ to: ["a@b.test"] }), channelConfigContext(id));
    await h.deps.sql`insert into notification_channels (id, tenant_id, name, type, config_encrypted)
                     values (${id}, ${tenantId}, ${`ch-${id}`}, 'email', ${sealed})`;
    return id;
  };

  test("create with channels and escalation steps; read back with durations as text; patch merges", async () => {
    const [c1, c2] = [await channel(), await channel()];
    const r = await h.call("POST", "/api/v1/alerts/rules", {
      token: operator,
      body: rule({ channel_ids: [c1], escalations: [{ level: 1, after: "30m", channel_ids: [c2] }] }),
    });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      for_duration: "5m",
      keep_firing_for: "0s",
      repeat_interval: null,
      channel_ids: [c1],
      escalations: [{ level: 1, after: "30m", channel_ids: [c2] }],
    });
    const p = await h.call("PATCH", `/api/v1/alerts/rules/${r.body.id}`, {
      token: operator,
      body: { repeat_interval: "4h", channel_ids: [c1, c2].sort() },
    });
    expect(p.status).toBe(200);
    expect(p.body).toMatchObject({ repeat_interval: "4h", for_duration: "5m", severity: "critical" });
    expect(p.body.channel_ids).toEqual([c1, c2].sort());
    expect(p.body.escalations).toHaveLength(1);
    const [db] = await h.deps
      .sql`select for_duration::text as f, repeat_interval::text as r from alert_rules where id = ${r.body.id}`;
    expect(db).toEqual({ f: "00:05:00", r: "04:00:00" });
  });

  test("the alerter's validator answers 422 with the path of every bad field", async () => {
    const r = await h.call("POST", "/api/v1/alerts/rules", {
      token: operator,
      body: {
        name: "",
        severity: "loud",
        type: "threshold",
        conditions: { conditions: [{ metric: "nope.x", window: "soon" }] },
      },
    });
    expect(r.status).toBe(422);
    const paths = r.body.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "body/name",
        "body/severity",
        "body/conditions/conditions/0/metric",
        "body/conditions/conditions/0/window",
      ]),
    );
    const unknown = await h.call("POST", "/api/v1/alerts/rules", {
      token: operator,
      body: rule({ colour: "red" }),
    });
    expect(unknown.status).toBe(422);
    expect(unknown.body.details[0].path).toBe("body/colour");
    const badStep = await h.call("POST", "/api/v1/alerts/rules", {
      token: operator,
      body: rule({ escalations: [{ level: 1, after: "never", channel_ids: [] }] }),
    });
    expect(badStep.body.details[0].path).toBe("body/escalations/0/after");
  });

  test("another tenant's channel cannot be attached (422), and nothing is written", async () => {
    const foreign = await channel(otherTenant);
    const name = `foreign-${crypto.randomUUID()}`;
    const r = await h.call("POST", "/api/v1/alerts/rules", {
      token: operator,
      body: rule({ name, channel_ids: [foreign] }),
    });
    expect(r.status).toBe(422);
    const [n] = await h.deps.sql`select count(*)::int as n from alert_rules where name = ${name}`;
    expect(n?.n).toBe(0);
  });
});

describe("notification channels", () => {
  let delivery: Delivery;
  let received: { headers: Headers; body: string }[] = [];
  let failing = false;
  let receiver: ReturnType<typeof Bun.serve>;

  beforeAll(async () => {
    receiver = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        received.push({ headers: req.headers, body: await req.text() });
        return new Response(failing ? "boom" : "ok", { status: failing ? 500 : 200 });
      },
    });
    delivery = createDelivery({
      sql: h.deps.sql,
      keyring: h.deps.keyring,
      log: silentLogger(),
      config: h.deps.config.alerter,
      workerId: "api-test",
    });
    await delivery.start();
  });
  afterAll(async () => {
    await delivery.stop();
    receiver.stop(true);
  });

  const webhook = async (secret = "a-signing-secret-of-some-length") => {
    const r = await h.call("POST", "/api/v1/notification-channels", {
      token: admin,
      body: {
        name: `hook-${crypto.randomUUID()}`,
        type: "webhook",
        config: {
          url: `http://127.0.0.1:${receiver.port}/hook?token=abc`,
          secret,
          headers: { Authorization: "Bearer t0k" },
        },
      },
    });
    expect(r.status).toBe(201);
    return r.body;
  };

  test("secrets are redacted on every read; '********' in a PATCH keeps them; audit holds no secret", async () => {
    const ch = await webhook();
    expect(ch.config).toEqual({
      url: `http://127.0.0.1:${receiver.port}/hook?********`,
      secret: "********",
      headers: { Authorization: "********" },
    });
    const p = await h.call("PATCH", `/api/v1/notification-channels/${ch.id}`, {
      token: admin,
      body: { config: { secret: "********", headers: { Authorization: "********", "X-Team": "ops" } } },
    });
    expect(p.status).toBe(200);
    const [row] = await h.deps.sql`select config_encrypted from notification_channels where id = ${ch.id}`;
    const stored = JSON.parse(h.deps.keyring.openText(row?.config_encrypted, channelConfigContext(ch.id)));
    expect(stored.secret).toBe("a-signing-secret-of-some-length");
    expect(stored.headers).toEqual({ Authorization: "Bearer t0k", "X-Team": "ops" });
    const list = await h.call("GET", "/api/v1/notification-channels?type=webhook", { token: operator });
    expect(JSON.stringify(list.body)).not.toMatch(/signing-secret|t0k|token=abc/);
    expect(await auditText(ch.id)).not.toMatch(/signing-secret|t0k|token=abc/);
  });

  test("invalid configs: 422 with paths", async () => {
    const r = await h.call("POST", "/api/v1/notification-channels", {
      token: admin,
      body: { name: "bad", type: "email", config: { to: ["not-an-address"], cc: [] } },
    });
    expect(r.status).toBe(422);
    const paths = r.body.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(["body/config/to/0", "body/config/cc"]));
    const t = await h.call("POST", "/api/v1/notification-channels", {
      token: admin,
      body: { name: "bad", type: "pigeon", config: {} },
    });
    expect(t.status).toBe(422);
  });

  test("send test notification: delivered by the alerter's worker, the API waits for the outcome", async () => {
    const ch = await webhook();
    received = [];
    const r = await h.call("POST", `/api/v1/notification-channels/${ch.id}/test`, {
      token: operator,
      body: { message: "hello from the API test", wait: 20 },
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ delivery: "delivered", attempts: 1 });
    expect(received).toHaveLength(1);
    expect(received[0]?.body).toContain("hello from the API test");
    const [o] = await h.deps
      .sql`select kind, payload from notification_outbox where id = ${r.body.outbox_id}`;
    expect(o?.kind).toBe("test");
    expect(o?.payload.requested_by).toBe("op@res.test");
    const again = await h.call("GET", `/api/v1/notification-channels/${ch.id}/test/${r.body.outbox_id}`, {
      token: operator,
    });
    expect(again.body.delivery).toBe("delivered");
  });

  test("a failing endpoint: 202 with the attempt's error once the wait is over", async () => {
    const ch = await webhook();
    failing = true;
    try {
      const r = await h.call("POST", `/api/v1/notification-channels/${ch.id}/test`, {
        token: operator,
        body: { wait: 2 },
      });
      expect(r.status).toBe(202);
      // not delivered: waiting for its next attempt, or in it (a retry may be under way when the wait ends)
      expect(["pending", "sending"]).toContain(r.body.delivery);
      expect(r.body.attempts).toBeGreaterThanOrEqual(1);
      expect(r.body.last_error).toContain("500");
    } finally {
      failing = false;
    }
  });
});

describe("alerts, acknowledgements and silences", () => {
  let ruleId: string;
  let firing: string;
  let resolved: string;

  beforeAll(async () => {
    const [r] = await h.deps.sql`
      insert into alert_rules (tenant_id, name, severity, type, conditions)
      values (${tenant}, 'disk full', 'critical', 'threshold', '{"conditions": []}') returning id`;
    ruleId = r?.id;
    const [hist] = await h.deps.sql`
      insert into alert_history (tenant_id, rule_id, severity, status, fired_at, labels)
      values (${tenant}, ${ruleId}, 'critical', 'firing', now(), '{"mountpoint": "/"}') returning id`;
    const [i1] = await h.deps.sql`
      insert into alert_instances (tenant_id, rule_id, fingerprint, labels, state, active_at, fired_at, history_id)
      values (${tenant}, ${ruleId}, 'a', '{"mountpoint": "/"}', 'firing', now(), now(), ${hist?.id}) returning id`;
    const [i2] = await h.deps.sql`
      insert into alert_instances (tenant_id, rule_id, fingerprint, labels, state, active_at, resolved_at)
      values (${tenant}, ${ruleId}, 'b', '{"mountpoint": "/var"}', 'resolved', now(), now()) returning id`;
    firing = i1?.id;
    resolved = i2?.id;
  });

  test("firing alerts are listed (resolved only when asked) and flagged silenced by a matching silence", async () => {
    const before = await h.call("GET", "/api/v1/alerts", { token: operator });
    expect(before.body.data.map((a: { id: string }) => a.id)).toEqual([firing]);
    expect(before.body.data[0]).toMatchObject({
      rule_name: "disk full",
      severity: "critical",
      silenced: false,
    });
    const s = await h.call("POST", "/api/v1/silences", {
      token: operator,
      body: {
        matchers: [
          { name: "rule", op: "=", value: "disk full" },
          { name: "mountpoint", op: "=~", value: "/(var)?" },
        ],
        ends_at: new Date(Date.now() + 3600_000).toISOString(),
        comment: "disk swap tonight",
      },
    });
    expect(s.status).toBe(201);
    expect(s.body).toMatchObject({ state: "active", author: "op@res.test" });
    const after = await h.call("GET", "/api/v1/alerts", { token: operator });
    expect(after.body.data[0].silenced).toBe(true);
    const res = await h.call("GET", "/api/v1/alerts?state=resolved", { token: operator });
    expect(res.body.data.map((a: { id: string }) => a.id)).toEqual([resolved]);

    h.clock.t += 1000; // the harness clock stands still unless moved
    const expired = await h.call("DELETE", `/api/v1/silences/${s.body.id}`, { token: operator });
    expect(expired.status).toBe(204);
    const g = await h.call("GET", `/api/v1/silences/${s.body.id}`, { token: operator });
    expect(g.body.state).toBe("expired");
    expect((await h.call("GET", "/api/v1/alerts", { token: operator })).body.data[0].silenced).toBe(false);
  });

  test("acknowledging a firing alert records who and why on the instance and its history", async () => {
    const a = await h.call("POST", `/api/v1/alerts/${firing}/acknowledge`, {
      token: operator,
      body: { comment: "on it" },
    });
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ author: "op@res.test", comment: "on it" });
    const d = await h.call("GET", `/api/v1/alerts/${firing}`, { token: operator });
    expect(d.body.ack_comment).toBe("on it");
    expect(d.body.acknowledgements).toHaveLength(1);
    const hist = await h.call("GET", "/api/v1/alerts/history?status=firing", { token: operator });
    expect(hist.body.data[0].acknowledged_at).not.toBeNull();
    const r = await h.call("POST", `/api/v1/alerts/${resolved}/acknowledge`, { token: operator });
    expect(r.status).toBe(409);
    expect(r.body.error).toContain("not firing");
    const unknown = await h.call("POST", `/api/v1/alerts/${crypto.randomUUID()}/acknowledge`, {
      token: operator,
    });
    expect(unknown.status).toBe(404);
  });

  test("silences refuse bad matchers and past end times; a future silence is removed by DELETE", async () => {
    const bad = await h.call("POST", "/api/v1/silences", {
      token: operator,
      body: {
        matchers: [{ name: "x", op: "=~", value: "(" }],
        ends_at: new Date(Date.now() + 60_000).toISOString(),
      },
    });
    expect(bad.status).toBe(422);
    expect(bad.body.details[0].path).toBe("body/matchers/0");
    const badName = await h.call("POST", "/api/v1/silences", {
      token: operator,
      body: {
        matchers: [{ name: "bad-name", op: "=", value: "" }],
        ends_at: new Date(Date.now() + 60_000).toISOString(),
      },
    });
    expect(badName.status).toBe(422);
    const past = await h.call("POST", "/api/v1/silences", {
      token: operator,
      body: { matchers: [], ends_at: new Date(Date.now() - 60_000).toISOString() },
    });
    expect(past.status).toBe(422);
    expect(past.body.details[0].path).toBe("body/ends_at");
    const future = await h.call("POST", "/api/v1/silences", {
      token: operator,
      body: {
        kind: "maintenance",
        matchers: [],
        starts_at: new Date(Date.now() + 3600_000).toISOString(),
        ends_at: new Date(Date.now() + 7200_000).toISOString(),
      },
    });
    expect(future.body.state).toBe("pending");
    expect((await h.call("DELETE", `/api/v1/silences/${future.body.id}`, { token: operator })).status).toBe(
      204,
    );
    expect((await h.call("GET", `/api/v1/silences/${future.body.id}`, { token: operator })).status).toBe(404);
  });
});
