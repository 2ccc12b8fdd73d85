/**
 * Security matrix: every protected route × (no token, expired, tampered, viewer, operator, admin, another
 * tenant's admin, superadmin) → expected status. Plus injection-shaped filters and row-level security.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { channelConfigContext } from "../../src/alerter/notify/channels.ts";
import { type Harness, harness, login, seedTenant, seedUser } from "./harness.ts";
import type { TestIdp } from "./oidc-idp.ts";
import { ssoHarness, ssoLogin } from "./sso-support.ts";

type Who = "none" | "expired" | "tampered" | "viewer" | "operator" | "admin" | "other_admin" | "superadmin";
const WHO: Who[] = [
  "none",
  "expired",
  "tampered",
  "viewer",
  "operator",
  "admin",
  "other_admin",
  "superadmin",
];
const RANK = { viewer: 0, operator: 1, admin: 2, superadmin: 3 } as const;

interface Route {
  method: string;
  /** Built per call, so destructive calls get a fresh resource. */
  path: (() => Promise<string>) & { label: string };
  min: keyof typeof RANK;
  body?: () => unknown;
  /** Tenant-scoped route addressing one of tenant A's rows: another tenant's admin gets 404. */
  row?: boolean;
  /** Platform route (no tenant): superadmin without X-Tenant-ID. */
  platform?: boolean;
  /** Ends the caller's session: each role signs in anew for the call. */
  fresh?: boolean;
  ok: number[];
}

let h: Harness;
let tenantA: string;
let tokens: Record<Who, string | undefined>;

const ins = async (q: Promise<{ id: string }[]>) => (await q)[0]?.id as string;
const agent = () =>
  ins(
    h.deps
      .sql`insert into agents (tenant_id, name) values (${tenantA}, ${`a-${crypto.randomUUID()}`}) returning id`,
  );
const probe = () =>
  ins(
    h.deps
      .sql`insert into probes (tenant_id, name) values (${tenantA}, ${`p-${crypto.randomUUID()}`}) returning id`,
  );
const target = () =>
  ins(
    h.deps
      .sql`insert into targets (tenant_id, name, address, type) values (${tenantA}, 't', '10.0.0.1', 'host') returning id`,
  );
const userRow = () =>
  ins(
    h.deps
      .sql`insert into users (tenant_id, email, role) values (${tenantA}, ${`u-${crypto.randomUUID()}@a.test`}, 'viewer') returning id`,
  );
const etoken = () =>
  ins(
    h.deps
      .sql`insert into enrollment_tokens (tenant_id, token_hash, expires_at) values (${tenantA}, ${crypto.getRandomValues(new Uint8Array(32))}, now() + interval '1 day') returning id`,
  );
const apikey = () =>
  ins(
    h.deps
      .sql`insert into api_keys (tenant_id, name, prefix, key_hash) values (${tenantA}, 'k', 'smk_x', ${crypto.getRandomValues(new Uint8Array(32))}) returning id`,
  );
const tenantRow = () =>
  ins(
    h.deps
      .sql`insert into tenants (name, slug) values ('T', ${`t-${crypto.randomUUID().slice(0, 8)}`}) returning id`,
  );
const labelled = (label: string, fn: () => Promise<string>) => Object.assign(fn, { label });
const snmpRow = () =>
  ins(
    h.deps
      .sql`insert into snmp_credentials (tenant_id, name, version, community_encrypted) values (${tenantA}, ${`s-${crypto.randomUUID()}`}, 'v2c', ${h.deps.keyring.seal("public", "x")}) returning id`,
  );
const RULE_BODY = () => ({
  name: `r-${crypto.randomUUID()}`,
  severity: "warning",
  type: "threshold",
  conditions: { conditions: [{ metric: "system.cpu_usage", operator: "gt", threshold: 90 }] },
});
const ruleRow = () =>
  ins(
    h.deps.sql`insert into alert_rules (tenant_id, name, severity, type, conditions)
               values (${tenantA}, ${`r-${crypto.randomUUID()}`}, 'warning', 'threshold', ${h.deps.sql.json(RULE_BODY().conditions)})
               returning id`,
  );
const channelRow = async () => {
  const id = crypto.randomUUID();
  const sealed = h.deps.keyring.seal(JSON.stringify({ to: ["ops@a.test"] }), channelConfigContext(id));
  await h.deps.sql`insert into notification_channels (id, tenant_id, name, type, config_encrypted)
                   values (${id}, ${tenantA}, ${`c-${id}`}, 'email', ${sealed})`;
  return id;
};
const firingAlert = async () => {
  const rule = await ruleRow();
  return ins(
    h.deps.sql`insert into alert_instances (tenant_id, rule_id, fingerprint, state, active_at, fired_at)
               values (${tenantA}, ${rule}, 'fp', 'firing', now(), now()) returning id`,
  );
};
const silenceRow = () =>
  ins(
    h.deps.sql`insert into alert_silences (tenant_id, matchers, starts_at, ends_at, author)
               values (${tenantA}, '[]', now() - interval '1 minute', now() + interval '1 hour', 'x') returning id`,
  );
const inventoried = async () => {
  const id = await agent();
  await h.deps.sql`insert into inventory_hosts (tenant_id, agent_id, collected_at, hostname)
                   values (${tenantA}, ${id}, now(), 'inv-host')`;
  return id;
};
const testDelivery = async () => {
  const channel = await channelRow();
  const outbox = await ins(
    h.deps.sql`insert into notification_outbox (tenant_id, channel_id, kind, idempotency_key, status)
               values (${tenantA}, ${channel}, 'test', ${crypto.randomUUID()}, 'delivered') returning id`,
  );
  return `${channel}/test/${outbox}`;
};
const sub = (base: string, make: () => Promise<string>, tail: string) =>
  labelled(`${base}/:id/${tail}`, async () => `${base}/${await make()}/${tail}`);

const fixed = (p: string) => labelled(p, async () => p);
const withId = (base: string, make: () => Promise<string>) =>
  labelled(`${base}/:id`, async () => `${base}/${await make()}`);

const routes: Route[] = [
  { method: "GET", path: fixed("/api/v1/auth/me"), min: "viewer", platform: true, ok: [200] },
  // signed-in users' own account: a fresh session per call (sign-out ends it), bodies that pass the guard
  // and are then refused (422) so that nothing changes
  {
    method: "POST",
    path: fixed("/api/v1/auth/logout"),
    min: "viewer",
    platform: true,
    fresh: true,
    ok: [200],
  },
  {
    method: "POST",
    path: fixed("/api/v1/auth/password"),
    min: "viewer",
    platform: true,
    body: () => ({ current_password: "x", new_password: "short" }),
    ok: [422],
  },
  { method: "POST", path: fixed("/api/v1/auth/mfa/enroll"), min: "viewer", platform: true, ok: [200] },
  {
    method: "POST",
    path: fixed("/api/v1/auth/mfa/activate"),
    min: "viewer",
    platform: true,
    body: () => ({ code: "not-a-code" }),
    ok: [422],
  },
  {
    method: "POST",
    path: fixed("/api/v1/auth/mfa/disable"),
    min: "viewer",
    platform: true,
    body: () => ({ password: "x", code: "not-a-code" }),
    ok: [422],
  },
  { method: "GET", path: fixed("/api/v1/enrollment-ca"), min: "admin", platform: true, ok: [200] },
  { method: "GET", path: fixed("/api/v1/tenant"), min: "viewer", ok: [200] },
  {
    method: "PATCH",
    path: fixed("/api/v1/tenant"),
    min: "admin",
    body: () => ({ name: "A renamed" }),
    ok: [200],
  },
  { method: "GET", path: fixed("/api/v1/admin/tenants"), min: "superadmin", platform: true, ok: [200] },
  {
    method: "POST",
    path: fixed("/api/v1/admin/tenants"),
    min: "superadmin",
    platform: true,
    body: () => ({ name: `N ${crypto.randomUUID()}` }),
    ok: [201],
  },
  {
    method: "GET",
    path: withId("/api/v1/admin/tenants", tenantRow),
    min: "superadmin",
    platform: true,
    ok: [200],
  },
  {
    method: "PATCH",
    path: withId("/api/v1/admin/tenants", tenantRow),
    min: "superadmin",
    platform: true,
    body: () => ({ name: "x" }),
    ok: [200],
  },
  {
    method: "DELETE",
    path: withId("/api/v1/admin/tenants", tenantRow),
    min: "superadmin",
    platform: true,
    ok: [204],
  },
  { method: "GET", path: fixed("/api/v1/users"), min: "admin", ok: [200] },
  {
    method: "POST",
    path: fixed("/api/v1/users"),
    min: "admin",
    body: () => ({ email: `n-${crypto.randomUUID()}@a.test`, role: "viewer" }),
    ok: [201],
  },
  { method: "GET", path: withId("/api/v1/users", userRow), min: "admin", row: true, ok: [200] },
  {
    method: "PATCH",
    path: withId("/api/v1/users", userRow),
    min: "admin",
    row: true,
    body: () => ({ name: "n" }),
    ok: [200],
  },
  { method: "DELETE", path: withId("/api/v1/users", userRow), min: "admin", row: true, ok: [204] },
  { method: "GET", path: fixed("/api/v1/agents"), min: "viewer", ok: [200] },
  { method: "GET", path: withId("/api/v1/agents", agent), min: "viewer", row: true, ok: [200] },
  {
    method: "PATCH",
    path: withId("/api/v1/agents", agent),
    min: "operator",
    row: true,
    body: () => ({ tags: ["web"] }),
    ok: [200],
  },
  { method: "DELETE", path: withId("/api/v1/agents", agent), min: "admin", row: true, ok: [200] },
  { method: "GET", path: fixed("/api/v1/probes"), min: "viewer", ok: [200] },
  {
    method: "POST",
    path: fixed("/api/v1/probes"),
    min: "admin",
    body: () => ({ name: `p-${crypto.randomUUID()}` }),
    ok: [201],
  },
  { method: "GET", path: withId("/api/v1/probes", probe), min: "viewer", row: true, ok: [200] },
  {
    method: "PATCH",
    path: withId("/api/v1/probes", probe),
    min: "operator",
    row: true,
    body: () => ({ location: undefined, tags: ["x"] }),
    ok: [200],
  },
  { method: "DELETE", path: withId("/api/v1/probes", probe), min: "admin", row: true, ok: [200] },
  { method: "GET", path: fixed("/api/v1/targets"), min: "viewer", ok: [200] },
  {
    method: "POST",
    path: fixed("/api/v1/targets"),
    min: "operator",
    body: () => ({ name: "t", address: "example.test", type: "http" }),
    ok: [201],
  },
  { method: "GET", path: withId("/api/v1/targets", target), min: "viewer", row: true, ok: [200] },
  {
    method: "PATCH",
    path: withId("/api/v1/targets", target),
    min: "operator",
    row: true,
    body: () => ({ enabled: false }),
    ok: [200],
  },
  { method: "DELETE", path: withId("/api/v1/targets", target), min: "operator", row: true, ok: [204] },
  { method: "GET", path: fixed("/api/v1/enrollment-tokens"), min: "admin", ok: [200] },
  {
    method: "POST",
    path: fixed("/api/v1/enrollment-tokens"),
    min: "admin",
    body: () => ({ label: "x" }),
    ok: [201],
  },
  { method: "DELETE", path: withId("/api/v1/enrollment-tokens", etoken), min: "admin", row: true, ok: [200] },
  { method: "GET", path: fixed("/api/v1/api-keys"), min: "admin", ok: [200] },
  {
    method: "POST",
    path: fixed("/api/v1/api-keys"),
    min: "admin",
    body: () => ({ name: "k", role: "viewer" }),
    ok: [201],
  },
  { method: "DELETE", path: withId("/api/v1/api-keys", apikey), min: "admin", row: true, ok: [200] },
  { method: "GET", path: fixed("/api/v1/audit-logs"), min: "admin", ok: [200] },
  {
    method: "GET",
    path: fixed("/api/v1/admin/audit-logs?platform=true"),
    min: "superadmin",
    platform: true,
    ok: [200],
  },
  { method: "GET", path: fixed("/api/v1/snmp-credentials"), min: "viewer", ok: [200] },
  {
    method: "POST",
    path: fixed("/api/v1/snmp-credentials"),
    min: "admin",
    body: () => ({ name: `s-${crypto.randomUUID()}`, version: "v2c", community: "public" }),
    ok: [201],
  },
  { method: "GET", path: withId("/api/v1/snmp-credentials", snmpRow), min: "viewer", row: true, ok: [200] },
  {
    method: "PATCH",
    path: withId("/api/v1/snmp-credentials", snmpRow),
    min: "admin",
    row: true,
    body: () => ({ community: "private" }),
    ok: [200],
  },
  { method: "DELETE", path: withId("/api/v1/snmp-credentials", snmpRow), min: "admin", row: true, ok: [204] },
  { method: "GET", path: fixed("/api/v1/alerts/rules"), min: "viewer", ok: [200] },
  { method: "POST", path: fixed("/api/v1/alerts/rules"), min: "operator", body: RULE_BODY, ok: [201] },
  { method: "GET", path: withId("/api/v1/alerts/rules", ruleRow), min: "viewer", row: true, ok: [200] },
  {
    method: "PATCH",
    path: withId("/api/v1/alerts/rules", ruleRow),
    min: "operator",
    row: true,
    body: () => ({ enabled: false }),
    ok: [200],
  },
  { method: "DELETE", path: withId("/api/v1/alerts/rules", ruleRow), min: "operator", row: true, ok: [204] },
  { method: "GET", path: fixed("/api/v1/notification-channels"), min: "viewer", ok: [200] },
  {
    method: "POST",
    path: fixed("/api/v1/notification-channels"),
    min: "admin",
    body: () => ({
      name: `c-${crypto.randomUUID()}`,
      type: "webhook",
      config: { url: "https://hooks.test/x", secret: "a-long-signing-secret" },
    }),
    ok: [201],
  },
  {
    method: "GET",
    path: withId("/api/v1/notification-channels", channelRow),
    min: "viewer",
    row: true,
    ok: [200],
  },
  {
    method: "PATCH",
    path: withId("/api/v1/notification-channels", channelRow),
    min: "admin",
    row: true,
    body: () => ({ enabled: false }),
    ok: [200],
  },
  {
    method: "DELETE",
    path: withId("/api/v1/notification-channels", channelRow),
    min: "admin",
    row: true,
    ok: [204],
  },
  {
    method: "POST",
    path: sub("/api/v1/notification-channels", channelRow, "test"),
    min: "operator",
    row: true,
    body: () => ({ wait: 0 }),
    ok: [202],
  },
  { method: "GET", path: fixed("/api/v1/alerts"), min: "viewer", ok: [200] },
  { method: "GET", path: fixed("/api/v1/alerts/history"), min: "viewer", ok: [200] },
  { method: "GET", path: withId("/api/v1/alerts", firingAlert), min: "viewer", row: true, ok: [200] },
  {
    method: "POST",
    path: sub("/api/v1/alerts", firingAlert, "acknowledge"),
    min: "operator",
    row: true,
    body: () => ({ comment: "on it" }),
    ok: [200],
  },
  { method: "GET", path: sub("/api/v1/agents", agent, "metrics"), min: "viewer", row: true, ok: [200] },
  { method: "GET", path: sub("/api/v1/agents", agent, "logs"), min: "viewer", row: true, ok: [200] },
  {
    method: "GET",
    path: sub("/api/v1/agents", inventoried, "inventory"),
    min: "viewer",
    row: true,
    ok: [200],
  },
  {
    method: "GET",
    path: labelled(
      "/api/v1/notification-channels/:id/test/:outbox_id",
      async () => `/api/v1/notification-channels/${await testDelivery()}`,
    ),
    min: "viewer",
    row: true,
    ok: [200],
  },
  {
    method: "GET",
    path: sub("/api/v1/agents", agent, "inventory/changes"),
    min: "viewer",
    row: true,
    ok: [200],
  },
  { method: "GET", path: sub("/api/v1/targets", target, "results"), min: "viewer", row: true, ok: [200] },
  {
    method: "POST",
    path: fixed("/api/v1/metrics/query"),
    min: "viewer",
    body: () => ({ queries: [{ metric: "system.cpu_usage", group_by: "agent" }] }),
    ok: [200],
  },
  { method: "GET", path: fixed("/api/v1/inventory/packages?name=openssl"), min: "viewer", ok: [200] },
  { method: "GET", path: fixed("/api/v1/reports/availability/targets"), min: "viewer", ok: [200] },
  { method: "GET", path: fixed("/api/v1/reports/availability/agents?format=csv"), min: "viewer", ok: [200] },
  {
    method: "POST",
    path: fixed("/api/graphql"),
    min: "viewer",
    platform: true,
    body: () => ({ query: "{ me }" }),
    ok: [200],
  },
  { method: "GET", path: fixed("/api/v1/silences"), min: "viewer", ok: [200] },
  {
    method: "POST",
    path: fixed("/api/v1/silences"),
    min: "operator",
    body: () => ({
      matchers: [{ name: "severity", op: "=", value: "info" }],
      ends_at: new Date(Date.now() + 3600_000).toISOString(),
    }),
    ok: [201],
  },
  { method: "GET", path: withId("/api/v1/silences", silenceRow), min: "viewer", row: true, ok: [200] },
  {
    method: "PATCH",
    path: withId("/api/v1/silences", silenceRow),
    min: "operator",
    row: true,
    body: () => ({ comment: "extended" }),
    ok: [200],
  },
  { method: "DELETE", path: withId("/api/v1/silences", silenceRow), min: "operator", row: true, ok: [204] },
];

const EMAIL: Partial<Record<Who, string>> = {
  viewer: "viewer@a.test",
  operator: "operator@a.test",
  admin: "admin@a.test",
  other_admin: "admin@b.test",
  superadmin: "root@platform.test",
};

/**
 * Routes anyone may call (they authenticate the caller themselves or serve public documents). Every other
 * route under /api must be in the matrix: the completeness test below fails on a new route left out.
 */
const PUBLIC = new Set([
  "POST /api/v1/setup",
  "POST /api/v1/auth/login",
  "POST /api/v1/auth/refresh",
  "POST /api/v1/auth/mfa/verify",
  "GET /api/v1/auth/sso",
  "GET /api/v1/auth/sso/:provider",
  "GET /api/v1/auth/sso/:provider/callback",
  "POST /api/v1/auth/sso/exchange",
  "GET /api/openapi.json",
  "GET /api/docs",
]);

function expected(r: Route, who: Who): number[] {
  if (who === "none" || who === "expired" || who === "tampered") return [401];
  const role = who === "other_admin" ? "admin" : who;
  if (RANK[role] < RANK[r.min]) return [403];
  if (who === "other_admin" && r.row) return [404];
  return r.ok;
}

beforeAll(async () => {
  h = await harness();
  tenantA = await seedTenant(h, "tenant-a");
  const tenantB = await seedTenant(h, "tenant-b");
  for (const role of ["viewer", "operator", "admin"]) await seedUser(h, `${role}@a.test`, role, tenantA);
  await seedUser(h, "admin@b.test", "admin", tenantB);
  await seedUser(h, "root@platform.test", "superadmin", null);
  await h.deps
    .sql`insert into gateway_ca (cert_pem, key_sealed) values ('-----BEGIN CERTIFICATE-----', '\\x00')`;
  const expiredTok = (await login(h, "viewer@a.test")).access_token;
  h.clock.t += 20 * 60_000; // past jwt_expiry (15m): that token is now expired
  const good = (await login(h, "viewer@a.test")).access_token;
  const [hd, pl, sig] = good.split(".");
  const claims = JSON.parse(Buffer.from(pl as string, "base64url").toString());
  claims.role = "superadmin";
  tokens = {
    none: undefined,
    expired: expiredTok,
    tampered: `${hd}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${sig}`,
    viewer: good,
    operator: (await login(h, "operator@a.test")).access_token,
    admin: (await login(h, "admin@a.test")).access_token,
    other_admin: (await login(h, "admin@b.test")).access_token,
    superadmin: (await login(h, "root@platform.test")).access_token,
  };
});

describe("route × caller matrix", () => {
  for (const r of routes) {
    test(`${r.method} ${r.path.label} (${r.min})`, async () => {
      const failures: string[] = [];
      for (const who of WHO) {
        const path = await r.path();
        const headers: Record<string, string> = {};
        if (who === "superadmin" && !r.platform) headers["x-tenant-id"] = tenantA;
        const token = r.fresh && EMAIL[who] ? (await login(h, EMAIL[who])).access_token : tokens[who];
        const res = await h.call(r.method, path, { token, body: r.body?.(), headers });
        const exp = expected(r, who);
        if (!exp.includes(res.status))
          failures.push(`${who}: got ${res.status} want ${exp} (${JSON.stringify(res.body).slice(0, 200)})`);
        if (res.status >= 400) expect(res.body.status).toBe("error");
      }
      expect(failures).toEqual([]);
    });
  }
});

test("every route under /api is in the matrix or declared public", () => {
  const covered = new Set(routes.map((r) => `${r.method} ${r.path.label.split("?")[0]}`));
  const missing = h.app.routes
    .filter((r) => r.path.startsWith("/api/") && r.method !== "OPTIONS")
    .map((r) => `${r.method} ${r.path.replace(/(.)\/$/, "$1")}`) // "/api/v1/users/" is /api/v1/users
    .filter((k) => !covered.has(k) && !PUBLIC.has(k));
  expect([...new Set(missing)]).toEqual([]);
});

describe("tenant isolation", () => {
  test("another tenant's admin lists none of tenant A's rows", async () => {
    await agent();
    const mine = await h.call("GET", "/api/v1/agents", { token: tokens.admin });
    expect(mine.body.data.length).toBeGreaterThan(0);
    const theirs = await h.call("GET", "/api/v1/agents", { token: tokens.other_admin });
    expect(theirs.status).toBe(200);
    expect(theirs.body.data).toEqual([]);
  });

  test("X-Tenant-ID naming another tenant: 404 for a tenant user; superadmin without it: 400", async () => {
    const r = await h.call("GET", "/api/v1/agents", {
      token: tokens.other_admin,
      headers: { "x-tenant-id": tenantA },
    });
    expect(r.status).toBe(404);
    expect(JSON.stringify(r.body)).not.toContain("tenant-a");
    const s = await h.call("GET", "/api/v1/agents", { token: tokens.superadmin });
    expect(s.status).toBe(400);
    const u = await h.call("GET", "/api/v1/agents", {
      token: tokens.superadmin,
      headers: { "x-tenant-id": crypto.randomUUID() },
    });
    expect(u.status).toBe(404);
  });

  test("row-level security: secumon_app without a tenant sees no rows", async () => {
    await agent();
    const n = await h.deps.sql.begin(async (tx) => {
      await tx`set local role secumon_app`;
      return (await tx`select count(*)::int as n from agents`)[0]?.n;
    });
    expect(n).toBe(0);
  });

  test("every change is audited with actor, before/after, address", async () => {
    const id = await agent();
    await h.call("PATCH", `/api/v1/agents/${id}`, {
      token: tokens.operator,
      body: { tags: ["db"] },
      headers: { "user-agent": "matrix-test" },
    });
    const [a] = await h.deps
      .sql`select * from audit_logs where resource_id = ${id} and action = 'agent.update'`;
    expect(a?.actor).toBe("operator@a.test");
    expect(a?.old_value.tags).toEqual([]);
    expect(a?.new_value.tags).toEqual(["db"]);
    expect(a?.user_agent).toBe("matrix-test");
    expect(a?.tenant_id).toBe(tenantA);
  });
});

describe("audit entries: the changes outside resource CRUD, and who can read them", () => {
  test("sign-out, MFA enrolment, revocations (with before and after)", async () => {
    const t = await login(h, "operator@a.test");
    await h.call("POST", "/api/v1/auth/logout", { token: t.access_token, headers: { "user-agent": "ua-x" } });
    const [out] = await h.deps.sql`
      select actor, tenant_id, host(ip_address) as ip, user_agent from audit_logs
      where action = 'auth.logout' and user_agent = 'ua-x'`;
    expect(out).toEqual({
      actor: "operator@a.test",
      tenant_id: tenantA,
      ip: "127.0.0.1",
      user_agent: "ua-x",
    });

    const enrol = await h.call("POST", "/api/v1/auth/mfa/enroll", { token: tokens.viewer });
    expect(enrol.status).toBe(200);
    const [e] = await h.deps.sql`
      select count(*)::int as n from audit_logs where action = 'user.mfa_enrolment_started' and actor = 'viewer@a.test'`;
    expect(e?.n).toBeGreaterThan(0);

    for (const [path, make, action] of [
      ["/api/v1/enrollment-tokens", etoken, "enrollment_token.revoke"],
      ["/api/v1/api-keys", apikey, "api_key.revoke"],
    ] as const) {
      const id = await make();
      expect((await h.call("DELETE", `${path}/${id}`, { token: tokens.admin })).status).toBe(200);
      const [a] = await h.deps
        .sql`select old_value, new_value from audit_logs where resource_id = ${id} and action = ${action}`;
      expect(a?.old_value.revoked_at).toBeNull();
      expect(a?.new_value.revoked_at).toBeString();
    }
  });

  test("platform events (tenants created or deleted) are read by superadmins only, under /admin/audit-logs", async () => {
    const made = await h.call("POST", "/api/v1/admin/tenants", {
      token: tokens.superadmin,
      body: { name: `Audited ${crypto.randomUUID()}` },
    });
    expect(made.status).toBe(201);
    const all = await h.call("GET", `/api/v1/admin/audit-logs?platform=true&action=tenant.create&limit=500`, {
      token: tokens.superadmin,
    });
    expect(all.status).toBe(200);
    const mine = all.body.data.find((x: { resource_id: string }) => x.resource_id === made.body.id);
    expect(mine).toMatchObject({ tenant_id: null, actor: "root@platform.test", ip_address: "127.0.0.1" });
    expect(mine.new_value.name).toBe(made.body.name);
    const ofA = await h.call("GET", `/api/v1/admin/audit-logs?tenant_id=${tenantA}&limit=500`, {
      token: tokens.superadmin,
    });
    expect(ofA.body.data.length).toBeGreaterThan(0);
    expect(ofA.body.data.every((x: { tenant_id: string }) => x.tenant_id === tenantA)).toBe(true);
    // a tenant's admin sees its own tenant's entries, never the platform's
    const tenantView = await h.call("GET", "/api/v1/audit-logs?action=tenant.create", {
      token: tokens.admin,
    });
    expect(tenantView.body.data).toEqual([]);
    const bad = await h.call("GET", "/api/v1/admin/audit-logs?tenant_id=nope", { token: tokens.superadmin });
    expect(bad.status).toBe(422);
    expect(bad.body.details[0].path).toBe("query/tenant_id");
  });
});

describe("injection-shaped input", () => {
  const evil = [
    "' or 1=1 --",
    "x'); drop table agents; --",
    "%",
    "_",
    "\\",
    "a\u0000b",
    "$" + "{jndi:ldap://x}",
    "<script>",
  ];
  test("filters bind values: no error, no leak, tables intact", async () => {
    for (const e of evil) {
      for (const path of [
        "/api/v1/agents",
        "/api/v1/probes",
        "/api/v1/targets",
        "/api/v1/users",
        "/api/v1/snmp-credentials",
        "/api/v1/alerts/rules",
        "/api/v1/notification-channels",
      ]) {
        const q = new URLSearchParams({ q: e }).toString();
        const r = await h.call("GET", `${path}?${q}`, { token: tokens.admin });
        expect([200, 422]).toContain(r.status);
        if (r.status === 200) expect(r.body.data).toEqual([]);
      }
      const t = await h.call("GET", `/api/v1/agents?${new URLSearchParams({ tag: e })}`, {
        token: tokens.admin,
      });
      expect([200, 422]).toContain(t.status);
    }
    const [c] = await h.deps.sql`select count(*)::int as n from agents`;
    expect(c?.n).toBeGreaterThan(0);
  });

  test("every free-text filter of every list binds its value: 200 or 422, never 500, tables intact", async () => {
    const a = await agent();
    const t = await target();
    const filters: [string, string[]][] = [
      ["/api/v1/targets", ["type"]],
      ["/api/v1/audit-logs", ["action", "resource_type", "actor"]],
      ["/api/v1/admin/audit-logs", ["action", "resource_type", "actor"]],
      ["/api/v1/admin/tenants", ["q"]],
      ["/api/v1/inventory/packages", ["name", "q", "version", "version_prefix", "manager"]],
      [`/api/v1/agents/${a}/logs`, ["q", "source", "from", "to"]],
      [`/api/v1/agents/${a}/metrics`, ["from", "to", "metrics"]],
      [`/api/v1/agents/${a}/inventory/changes`, ["from", "to"]],
      [`/api/v1/targets/${t}/results`, ["test_type"]],
      ["/api/v1/reports/availability/targets", ["from", "to"]],
      ["/api/v1/reports/availability/agents", ["from", "to"]],
    ];
    const failures: string[] = [];
    for (const e of evil) {
      for (const [path, params] of filters) {
        for (const p of params) {
          const r = await h.call("GET", `${path}?${new URLSearchParams({ [p]: e })}`, {
            token: path.includes("/admin/") ? tokens.superadmin : tokens.admin,
          });
          if (r.status !== 200 && r.status !== 422)
            failures.push(`${path} ${p}=${JSON.stringify(e)}: ${r.status}`);
          if (
            r.status === 200 &&
            Array.isArray(r.body?.data) &&
            p !== "from" &&
            p !== "to" &&
            p !== "metrics"
          )
            if (r.body.data.length) failures.push(`${path} ${p}=${JSON.stringify(e)}: matched rows`);
        }
      }
    }
    expect(failures).toEqual([]);
    const [c] = await h.deps.sql`select count(*)::int as n from agents`;
    expect(c?.n).toBeGreaterThan(0);
  });

  test("sort outside the allow-list: 422 naming the field", async () => {
    const r = await h.call("GET", "/api/v1/agents?sort=name;drop", { token: tokens.admin });
    expect(r.status).toBe(422);
    const r2 = await h.call("GET", "/api/v1/agents?sort=password_hash", { token: tokens.admin });
    expect(r2.status).toBe(422);
    expect(r2.body.details[0].path).toBe("query/sort");
  });

  test("bad ids and bodies: 422 with paths", async () => {
    const r = await h.call("GET", "/api/v1/agents/not-a-uuid", { token: tokens.admin });
    expect(r.status).toBe(422);
    expect(r.body.details[0].path).toBe("params/id");
    const b = await h.call("POST", "/api/v1/targets", {
      token: tokens.admin,
      body: { name: "", address: "x", type: "Bad Type", tests: [{}] },
    });
    expect(b.status).toBe(422);
    const paths = b.body.details.map((d: { path: string }) => d.path);
    expect(paths).toContain("body/name");
    expect(paths).toContain("body/type");
  });
});

describe("OIDC callback against a real provider: tampered state or nonce", () => {
  let sso: Harness;
  let idp: TestIdp;
  beforeAll(async () => {
    ({ h: sso, idp } = await ssoHarness());
  });
  afterAll(() => idp.close());
  const users = async (sub: string) =>
    (await sso.deps.sql`select count(*)::int as n from users where sso_id = ${sub}`)[0]?.n;

  for (const provider of ["jumpcloud", "oidc"]) {
    test(`${provider}: the untouched flow succeeds (control)`, async () => {
      idp.user = { sub: `${provider}-ok`, email: `ok-${provider}@sso-tenant.test` };
      const { res } = await ssoLogin(sso, idp, provider);
      expect([302, 403]).toContain(res.status); // oidc has no tenant to provision in: 403, after verification
      if (provider === "jumpcloud") expect(res.headers.get("location")).toContain("#sso_code=");
    });

    test(`${provider}: wrong state → 401, nobody signed in`, async () => {
      idp.user = { sub: `${provider}-state`, email: "state@sso-tenant.test" };
      const { res, back } = await ssoLogin(sso, idp, provider, (u) =>
        u.searchParams.set("state", "forged-state"),
      );
      expect(back.searchParams.get("state")).toBe("forged-state");
      expect(res.status).toBe(401);
      expect(res.body.status).toBe("error");
      expect(res.body.error).toContain("state");
      expect(res.headers.get("location")).toBeNull();
      expect(await users(`${provider}-state`)).toBe(0);
    });

    test(`${provider}: wrong nonce → 401 (the ID token was issued for another nonce)`, async () => {
      idp.user = { sub: `${provider}-nonce`, email: "nonce@sso-tenant.test" };
      const { res } = await ssoLogin(sso, idp, provider, (u) => u.searchParams.set("nonce", "forged-nonce"));
      expect(res.status).toBe(401);
      expect(res.body.error).toContain("nonce");
      expect(await users(`${provider}-nonce`)).toBe(0);
    });
  }
});
