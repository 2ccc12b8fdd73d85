/**
 * Single sign-on against a real OpenID Connect provider (oidc-provider on loopback): the JumpCloud preset
 * provisions users, the generic provider links existing ones by e-mail, and every way the flow can go wrong is
 * refused. Wrong state and wrong nonce are in matrix.test.ts with the other hostile inputs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Harness, harness, seedTenant, seedUser } from "./harness.ts";
import { authorizeAtIdp, type TestIdp } from "./oidc-idp.ts";
import { begin, callback, codeFrom, ssoHarness, ssoLogin } from "./sso-support.ts";

let h: Harness;
let idp: TestIdp;
let ssoTenant: string;

beforeAll(async () => {
  ({ h, idp, tenantId: ssoTenant } = await ssoHarness());
});
afterAll(() => idp.close());

const exchange = (code: string) => h.call("POST", "/api/v1/auth/sso/exchange", { body: { code } });

describe("JumpCloud preset", () => {
  test("the sign-in page lists the enabled providers", async () => {
    const r = await h.call("GET", "/api/v1/auth/sso");
    expect(r.status).toBe(200);
    expect(r.body.providers.map((p: { id: string }) => p.id)).toEqual(["jumpcloud", "oidc"]);
  });

  test("starting sign-in redirects to the provider with PKCE, state and nonce; the cookie is sealed", async () => {
    const b = await begin(h, "jumpcloud");
    expect(b.authUrl.origin).toBe(new URL(idp.issuer).origin);
    const q = b.authUrl.searchParams;
    expect(q.get("code_challenge_method")).toBe("S256");
    expect(q.get("code_challenge")?.length).toBeGreaterThan(40);
    expect(q.get("state")?.length).toBeGreaterThan(20);
    expect(q.get("nonce")?.length).toBeGreaterThan(20);
    expect(q.get("redirect_uri")).toBe("http://localhost/api/v1/auth/sso/jumpcloud/callback");
    expect(b.setCookie).toContain("HttpOnly");
    expect(b.setCookie).toContain("SameSite=Lax");
    expect(b.cookie).not.toContain(q.get("state") as string); // sealed, not readable
  });

  test("full login: a new user is provisioned in the configured tenant, then gets a session", async () => {
    idp.user = { sub: "jc-alice", email: "alice@sso.test", name: "Alice" };
    const { res } = await ssoLogin(h, idp, "jumpcloud");
    expect(res.status).toBe(302);
    const loc = res.headers.get("location");
    expect(loc?.startsWith("/dashboard#sso_code=")).toBe(true);
    expect(res.headers.get("set-cookie")).toContain("Max-Age=0");
    const tokens = await exchange(codeFrom(loc));
    expect(tokens.status).toBe(200);
    expect(tokens.body.refresh_token).toBeString();
    const me = await h.call("GET", "/api/v1/auth/me", { token: tokens.body.access_token });
    expect(me.body).toMatchObject({ email: "alice@sso.test", role: "operator", tenant_id: ssoTenant });
    expect(me.body.sso_provider).toBe("jumpcloud");
    const audit = await h.deps
      .sql`select action from audit_logs where tenant_id = ${ssoTenant} order by created_at`;
    expect(audit.map((a) => a.action)).toEqual(["user.sso_provisioned", "auth.login"]);
  });

  test("a second sign-in finds the same user; a code works once", async () => {
    idp.user = { sub: "jc-alice", email: "alice@sso.test" };
    const { res } = await ssoLogin(h, idp, "jumpcloud");
    const code = codeFrom(res.headers.get("location"));
    expect((await exchange(code)).status).toBe(200);
    const again = await exchange(code);
    expect(again.status).toBe(401);
    expect(again.body.error).toContain("already used");
    const [n] = await h.deps.sql`select count(*)::int as n from users where sso_id = 'jc-alice'`;
    expect(n?.n).toBe(1);
  });

  test("an expired or forged code is refused", async () => {
    idp.user = { sub: "jc-bob", email: "bob@sso.test" };
    const { res } = await ssoLogin(h, idp, "jumpcloud");
    const code = codeFrom(res.headers.get("location"));
    h.clock.t += 2 * 60_000;
    try {
      expect((await exchange(code)).status).toBe(401);
    } finally {
      h.clock.t -= 2 * 60_000;
    }
    expect((await exchange(`${code.slice(0, -4)}AAAA`)).status).toBe(401);
    const access = (await h.call("POST", "/api/v1/auth/sso/exchange", { body: { code: "x" } })).status;
    expect(access).toBe(401);
  });

  test("a disabled account is refused at the callback", async () => {
    idp.user = { sub: "jc-carol", email: "carol@sso.test" };
    await ssoLogin(h, idp, "jumpcloud");
    await h.deps.sql`update users set disabled = true where sso_id = 'jc-carol'`;
    const { res } = await ssoLogin(h, idp, "jumpcloud");
    expect(res.status).toBe(401);
    expect(res.body.error).toContain("disabled");
  });
});

describe("JumpCloud preset: linking", () => {
  test("links an existing account of its tenant when JumpCloud leaves email_verified out (its directory's addresses are set by administrators)", async () => {
    const uid = await seedUser(h, "gina@sso.test", "viewer", ssoTenant);
    idp.user = { sub: "jc-gina", email: "gina@sso.test", email_verified: null };
    const { res } = await ssoLogin(h, idp, "jumpcloud");
    expect(res.status).toBe(302);
    const [u] = await h.deps.sql`select sso_provider, sso_id from users where id = ${uid}`;
    expect(u).toEqual({ sso_provider: "jumpcloud", sso_id: "jc-gina" });
  });
});

describe("generic OIDC provider", () => {
  test("links an existing password user by e-mail; no tenant configured means no provisioning", async () => {
    const t = await seedTenant(h, "linked");
    const uid = await seedUser(h, "dave@linked.test", "admin", t);
    idp.user = { sub: "kc-dave", email: "DAVE@linked.test" };
    const { res } = await ssoLogin(h, idp, "oidc");
    expect(res.status).toBe(302);
    const tokens = await exchange(codeFrom(res.headers.get("location")));
    const me = await h.call("GET", "/api/v1/auth/me", { token: tokens.body.access_token });
    expect(me.body.id).toBe(uid);
    const [u] = await h.deps.sql`select sso_provider, sso_id from users where id = ${uid}`;
    expect(u).toEqual({ sso_provider: "oidc", sso_id: "kc-dave" });

    idp.user = { sub: "kc-nobody", email: "nobody@elsewhere.test" };
    const none = await ssoLogin(h, idp, "oidc");
    expect(none.res.status).toBe(403);
    expect(none.res.body.error).toContain("api.auth.oidc.tenant");
  });

  test("never links a superadmin, an unverified address, or an account linked elsewhere", async () => {
    await seedUser(h, "root@sso.test", "superadmin", null);
    idp.user = { sub: "kc-root", email: "root@sso.test" };
    expect((await ssoLogin(h, idp, "oidc")).res.status).toBe(403);

    const t = await seedTenant(h, "unverified");
    await seedUser(h, "erin@unverified.test", "viewer", t);
    idp.user = { sub: "kc-erin", email: "erin@unverified.test", email_verified: false };
    expect((await ssoLogin(h, idp, "oidc")).res.status).toBe(401);

    // a provider that leaves email_verified out vouches for nothing: no link either
    await seedUser(h, "frank@unverified.test", "viewer", t);
    idp.user = { sub: "kc-frank", email: "frank@unverified.test", email_verified: null };
    const silent = await ssoLogin(h, idp, "oidc");
    expect(silent.res.status).toBe(401);
    expect(silent.res.body.error).toContain("email_verified");

    idp.user = { sub: "kc-other-alice", email: "alice@sso.test" }; // alice is linked to jumpcloud
    expect((await ssoLogin(h, idp, "oidc")).res.status).toBe(409);
    const unlinked = await h.deps.sql`
      select sso_provider from users where email in ('erin@unverified.test', 'frank@unverified.test')`;
    expect(unlinked.map((u) => u.sso_provider)).toEqual([null, null]);
  });
});

describe("refused flows", () => {
  test("no cookie, another provider's cookie, an expired flow, an IdP error", async () => {
    idp.user = { sub: "jc-frank", email: "frank@sso.test" };
    const b = await begin(h, "jumpcloud");
    const back = await authorizeAtIdp(idp, b.authUrl.href);
    expect((await callback(h, back, null)).status).toBe(401);
    const other = await begin(h, "oidc");
    expect((await callback(h, back, other.cookie)).status).toBe(401);
    h.clock.t += 11 * 60_000;
    try {
      const late = await callback(h, back, b.cookie);
      expect(late.status).toBe(401);
      expect(late.body.error).toContain("10 minutes");
    } finally {
      h.clock.t -= 11 * 60_000;
    }
    const denied = new URL(back);
    denied.search = `?error=access_denied&error_description=user+cancelled&state=${back.searchParams.get("state")}`;
    const r = await callback(h, denied, b.cookie);
    expect(r.status).toBe(401);
    expect(r.body.error).toContain("access_denied");
    const [n] = await h.deps.sql`select count(*)::int as n from users where sso_id = 'jc-frank'`;
    expect(n?.n).toBe(0);
  });

  test("a code replayed with its own cookie fails at the provider (codes are single-use)", async () => {
    idp.user = { sub: "jc-gina", email: "gina@sso.test" };
    const first = await ssoLogin(h, idp, "jumpcloud");
    expect(first.res.status).toBe(302);
    const replay = await callback(h, first.back, first.cookie);
    expect(replay.status).toBe(401);
  });

  test("bad input: unknown provider 422, open redirect 422", async () => {
    expect((await h.call("GET", "/api/v1/auth/sso/github")).status).toBe(422);
    for (const bad of ["//evil.test/x", "https://evil.test/", "/a\\b"]) {
      const r = await h.call("GET", `/api/v1/auth/sso/jumpcloud?return_to=${encodeURIComponent(bad)}`);
      expect(r.status).toBe(422);
      expect(r.body.details[0].path).toBe("query/return_to");
    }
  });

  test("a provider that is not enabled: 404; an unreachable issuer: 503 saying what to check", async () => {
    const plain = await harness();
    const off = await plain.call("GET", "/api/v1/auth/sso/jumpcloud");
    expect(off.status).toBe(404);
    expect(off.body.error).toContain("api.auth.jumpcloud.enabled");
    const down = await harness({
      public_url: "http://localhost",
      auth: { oidc: { enabled: true, issuer: "http://127.0.0.1:9/", client_id: "c", client_secret: "s" } },
    });
    const r = await down.call("GET", "/api/v1/auth/sso/oidc");
    expect(r.status).toBe(503);
    expect(r.body.error).toContain("check the issuer URL");
  });
});
