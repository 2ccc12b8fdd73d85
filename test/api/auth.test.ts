import { beforeAll, describe, expect, test } from "bun:test";
import { renderSVG } from "uqr";
import { needsRehash, PASSWORD_PARAMS } from "../../src/auth/passwords.ts";
import { totpNow } from "../../src/auth/totp.ts";
import { type Harness, harness, login, PASSWORD, passwordHash, seedTenant, seedUser } from "./harness.ts";

let h: Harness;
let tenant: string;

beforeAll(async () => {
  h = await harness();
  tenant = await seedTenant(h, "acme");
  await seedUser(h, "admin@acme.test", "admin", tenant);
  await seedUser(h, "viewer@acme.test", "viewer", tenant);
});

describe("login", () => {
  test("right password: access + refresh tokens; /auth/me", async () => {
    const t = await login(h, "Admin@Acme.test");
    expect(t.refresh_token.startsWith("smr_")).toBe(true);
    const me = await h.call("GET", "/api/v1/auth/me", { token: t.access_token });
    expect(me.status).toBe(200);
    expect(me.body.email).toBe("admin@acme.test");
    expect(me.body.role).toBe("admin");
    expect(me.body.password_hash).toBeUndefined();
    const [a] = await h.deps
      .sql`select count(*)::int as n from audit_logs where action = 'auth.login' and actor = 'admin@acme.test'`;
    expect(a?.n).toBe(1);
  });

  test("wrong password and unknown account answer the same 401", async () => {
    const a = await h.call("POST", "/api/v1/auth/login", {
      body: { email: "viewer@acme.test", password: "nope" },
    });
    const b = await h.call("POST", "/api/v1/auth/login", {
      body: { email: "ghost@acme.test", password: "nope" },
    });
    expect(a.status).toBe(401);
    expect(b.status).toBe(401);
    expect(a.body.error).toBe(b.body.error);
  });

  test("invalid body: 422 with field paths; unknown field rejected", async () => {
    const r = await h.call("POST", "/api/v1/auth/login", {
      body: { email: "not-an-email", password: "x", extra: 1 },
    });
    expect(r.status).toBe(422);
    const paths = r.body.details.map((d: { path: string }) => d.path);
    expect(paths).toContain("body/email");
    expect(paths).toContain("body/extra");
  });

  test("malformed JSON: 400", async () => {
    const r = await h.call("POST", "/api/v1/auth/login", {
      raw: "{nope",
      headers: { "content-type": "application/json" },
    });
    expect(r.status).toBe(400);
    expect(r.body.errorType).toBe("BAD_REQUEST");
  });

  test("oversized body: 413", async () => {
    const big = "x".repeat(h.deps.config.api.max_body_bytes + 10);
    const r = await h.call("POST", "/api/v1/auth/login", { body: { email: "a@b.c", password: big } });
    expect(r.status).toBe(413);
  });

  test("account locks after max_failures, with Retry-After detail, and unlocks after the duration", async () => {
    const email = "locky@acme.test";
    await seedUser(h, email, "viewer", tenant);
    const max = h.deps.config.api.auth.lockout.max_failures;
    for (let i = 0; i < max; i++) {
      const r = await h.call("POST", "/api/v1/auth/login", { body: { email, password: "wrong password" } });
      expect(r.status).toBe(401);
    }
    const locked = await h.call("POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } });
    expect(locked.status).toBe(429);
    expect(locked.body.details.retry_after_seconds).toBeGreaterThan(0);
    h.clock.t += 16 * 60_000;
    const ok = await h.call("POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } });
    expect(ok.status).toBe(200);
  });
});

describe("sign-in back-off under concurrent guesses", () => {
  test("wrong passwords sent at once are each counted: the account locks, the right password is refused", async () => {
    const email = "burst@acme.test";
    await seedUser(h, email, "viewer", tenant);
    const max = h.deps.config.api.auth.lockout.max_failures;
    const burst = await Promise.all(
      Array.from({ length: max * 2 }, (_, i) =>
        h.call("POST", "/api/v1/auth/login", { body: { email, password: `wrong guess ${i}` } }),
      ),
    );
    for (const r of burst) expect(r.status).toBe(401);
    const [u] = await h.deps.sql`select locked_until, lockouts from users where email = ${email}`;
    expect(u?.locked_until).not.toBeNull();
    expect(u?.lockouts).toBe(1); // guesses that arrive while it is locked add no further lock
    const right = await h.call("POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } });
    expect(right.status).toBe(429);
    const lockMs = u?.locked_until.getTime() - h.clock.t;
    expect(Number(right.headers.get("retry-after"))).toBe(Math.ceil(lockMs / 1000)); // the lock's own end
    const [a] = await h.deps.sql`
      select count(*)::int as n from audit_logs a join users u on u.id = a.resource_id
      where u.email = ${email} and a.action = 'auth.locked'`;
    expect(a?.n).toBe(1);
    h.clock.t += 16 * 60_000; // past the lock and the address window: later tests start clean
    expect((await h.call("POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } })).status).toBe(
      200,
    );
  });
});

describe("refresh tokens", () => {
  test("rotation; reuse of a rotated token revokes the whole family", async () => {
    const t1 = await login(h, "viewer@acme.test");
    const r2 = await h.call("POST", "/api/v1/auth/refresh", { body: { refresh_token: t1.refresh_token } });
    expect(r2.status).toBe(200);
    const t2 = r2.body;
    expect(t2.refresh_token).not.toBe(t1.refresh_token);
    // the old one again: reuse → family revoked
    const reuse = await h.call("POST", "/api/v1/auth/refresh", { body: { refresh_token: t1.refresh_token } });
    expect(reuse.status).toBe(401);
    const after = await h.call("POST", "/api/v1/auth/refresh", { body: { refresh_token: t2.refresh_token } });
    expect(after.status).toBe(401);
    // and the access token of that session stops working at once
    const me = await h.call("GET", "/api/v1/auth/me", { token: t2.access_token });
    expect(me.status).toBe(401);
    const [a] = await h.deps
      .sql`select count(*)::int as n from audit_logs where action = 'auth.refresh_reuse'`;
    expect(a?.n).toBe(1);
  });

  test("logout revokes the session", async () => {
    const t = await login(h, "viewer@acme.test");
    expect((await h.call("POST", "/api/v1/auth/logout", { token: t.access_token })).status).toBe(200);
    expect((await h.call("GET", "/api/v1/auth/me", { token: t.access_token })).status).toBe(401);
    expect(
      (await h.call("POST", "/api/v1/auth/refresh", { body: { refresh_token: t.refresh_token } })).status,
    ).toBe(401);
  });

  test("expired access token: 401 saying so", async () => {
    const t = await login(h, "viewer@acme.test");
    h.clock.t += 16 * 60_000;
    const r = await h.call("GET", "/api/v1/auth/me", { token: t.access_token });
    expect(r.status).toBe(401);
    expect(r.body.error).toContain("expired");
    const r2 = await h.call("POST", "/api/v1/auth/refresh", { body: { refresh_token: t.refresh_token } });
    expect(r2.status).toBe(200);
  });

  test("tampered token: 401", async () => {
    const t = await login(h, "viewer@acme.test");
    const [head, payload, sig] = t.access_token.split(".");
    const claims = JSON.parse(Buffer.from(payload as string, "base64url").toString());
    claims.role = "superadmin";
    const forged = `${head}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${sig}`;
    expect((await h.call("GET", "/api/v1/auth/me", { token: forged })).status).toBe(401);
  });
});

describe("TOTP MFA", () => {
  test("enrol, activate, challenge, replay refused, recovery code once", async () => {
    const email = "mfa@acme.test";
    await seedUser(h, email, "operator", tenant);
    const t = await login(h, email);
    const en = await h.call("POST", "/api/v1/auth/mfa/enroll", { token: t.access_token });
    expect(en.status).toBe(200);
    expect(en.body.otpauth_uri).toStartWith("otpauth://totp/");
    expect(en.body.qr_svg).toStartWith("<svg");
    expect(en.body.qr_svg).toBe(renderSVG(en.body.otpauth_uri, { border: 2, pixelSize: 6 })); // the URI's QR
    const secret = en.body.secret as string;
    const [stored] = await h.deps.sql`select totp_secret_encrypted from users where email = ${email}`;
    expect(Buffer.from(stored?.totp_secret_encrypted).toString()).not.toContain(secret);

    const wrong = await h.call("POST", "/api/v1/auth/mfa/activate", {
      token: t.access_token,
      body: { code: "000000" },
    });
    expect(wrong.status).toBe(401);
    const act = await h.call("POST", "/api/v1/auth/mfa/activate", {
      token: t.access_token,
      body: { code: await totpNow(secret, h.clock.t) },
    });
    expect(act.status).toBe(200);
    expect(act.body.recovery_codes).toHaveLength(10);

    h.clock.t += 31_000; // next step
    const l = await h.call("POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } });
    expect(l.body.mfa_required).toBe(true);
    expect(l.body.access_token).toBeUndefined();
    const code = await totpNow(secret, h.clock.t);
    const v = await h.call("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: l.body.mfa_token, code },
    });
    expect(v.status).toBe(200);
    expect(v.body.access_token).toBeString();

    // same code again within the same step: replay
    const l2 = await h.call("POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } });
    const replay = await h.call("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: l2.body.mfa_token, code },
    });
    expect(replay.status).toBe(401);

    const rc = act.body.recovery_codes[0] as string;
    const rec = await h.call("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: l2.body.mfa_token, recovery_code: rc.toUpperCase() },
    });
    expect(rec.status).toBe(200);
    const l3 = await h.call("POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } });
    const again = await h.call("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: l3.body.mfa_token, recovery_code: rc },
    });
    expect(again.status).toBe(401);
  });

  test("tenant requiring MFA: login gives a setup token limited to enrolment", async () => {
    const strict = await seedTenant(h, "strict", { mfa_required: true });
    await seedUser(h, "new@strict.test", "admin", strict);
    const l = await h.call("POST", "/api/v1/auth/login", {
      body: { email: "new@strict.test", password: PASSWORD },
    });
    expect(l.status).toBe(200);
    expect(l.body.mfa_enrollment_required).toBe(true);
    expect(l.body.refresh_token).toBeUndefined();
    const users = await h.call("GET", "/api/v1/users", { token: l.body.access_token });
    expect(users.status).toBe(401); // a setup token is not an access token
    const en = await h.call("POST", "/api/v1/auth/mfa/enroll", { token: l.body.access_token });
    expect(en.status).toBe(200);
    const act = await h.call("POST", "/api/v1/auth/mfa/activate", {
      token: l.body.access_token,
      body: { code: await totpNow(en.body.secret, h.clock.t) },
    });
    expect(act.status).toBe(200);
    expect(act.body.session.access_token).toBeString();
    expect((await h.call("GET", "/api/v1/users", { token: act.body.session.access_token })).status).toBe(200);
  });
});

describe("a tenant turning MFA on", () => {
  test("signs out its password users without MFA (the admin's access token lasts); MFA cannot then be turned off", async () => {
    const t = await seedTenant(h, "turning");
    await seedUser(h, "boss@turning.test", "admin", t);
    await seedUser(h, "plain@turning.test", "viewer", t);
    await seedUser(h, "secured@turning.test", "viewer", t);
    const boss = await login(h, "boss@turning.test");
    const plain = await login(h, "plain@turning.test");
    // secured@ enrols MFA first
    const sec = await login(h, "secured@turning.test");
    const en = await h.call("POST", "/api/v1/auth/mfa/enroll", { token: sec.access_token });
    await h.call("POST", "/api/v1/auth/mfa/activate", {
      token: sec.access_token,
      body: { code: await totpNow(en.body.secret, h.clock.t) },
    });

    const on = await h.call("PATCH", "/api/v1/tenant", {
      token: boss.access_token,
      body: { settings: { mfa_required: true } },
    });
    expect(on.status).toBe(200);
    expect((await h.call("GET", "/api/v1/auth/me", { token: plain.access_token })).status).toBe(401);
    const refresh = await h.call("POST", "/api/v1/auth/refresh", {
      body: { refresh_token: plain.refresh_token },
    });
    expect(refresh.status).toBe(401);
    // the admin's own access token lasts until it expires; its refresh token does not
    expect((await h.call("GET", "/api/v1/auth/me", { token: boss.access_token })).status).toBe(200);
    expect(
      (await h.call("POST", "/api/v1/auth/refresh", { body: { refresh_token: boss.refresh_token } })).status,
    ).toBe(401);
    expect((await h.call("GET", "/api/v1/auth/me", { token: sec.access_token })).status).toBe(200);
    const again = await h.call("POST", "/api/v1/auth/login", {
      body: { email: "plain@turning.test", password: PASSWORD },
    });
    expect(again.body.mfa_enrollment_required).toBe(true);

    h.clock.t += 31_000;
    const off = await h.call("POST", "/api/v1/auth/mfa/disable", {
      token: sec.access_token,
      body: { password: PASSWORD, code: await totpNow(en.body.secret, h.clock.t) },
    });
    expect(off.status).toBe(409);
    expect(off.body.error).toContain("requires multi-factor");
    const [u] = await h.deps.sql`select mfa_enabled from users where email = 'secured@turning.test'`;
    expect(u?.mfa_enabled).toBe(true);
  });
});

describe("password change and MFA off: the checks a signed-in user repeats", () => {
  test("password change: 422 naming new_password, wrong current password 401, success signs out the other sessions", async () => {
    const email = "pw@acme.test";
    await seedUser(h, email, "viewer", tenant);
    const a = await login(h, email);
    const b = await login(h, email);
    const short = await h.call("POST", "/api/v1/auth/password", {
      token: a.access_token,
      body: { current_password: PASSWORD, new_password: "short" },
    });
    expect(short.status).toBe(422);
    expect(short.body.details[0].path).toBe("body/new_password");
    const wrong = await h.call("POST", "/api/v1/auth/password", {
      token: a.access_token,
      body: { current_password: "not my password", new_password: "another long passphrase" },
    });
    expect(wrong.status).toBe(401);
    const ok = await h.call("POST", "/api/v1/auth/password", {
      token: a.access_token,
      body: { current_password: PASSWORD, new_password: "another long passphrase" },
      headers: { "user-agent": "pw-test" },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.other_sessions_signed_out).toBe(1);
    expect((await h.call("GET", "/api/v1/auth/me", { token: b.access_token })).status).toBe(401);
    const [e] = await h.deps.sql`
      select actor, user_agent from audit_logs where action = 'user.password_changed' and actor = ${email}`;
    expect(e?.user_agent).toBe("pw-test");
    expect((await login(h, email, "another long passphrase")).access_token).toBeString();
  });

  test("wrong current passwords are limited like sign-in: 429 after max_failures, even for the right one", async () => {
    const email = "pw-guess@acme.test";
    await seedUser(h, email, "viewer", tenant);
    const t = await login(h, email);
    const max = h.deps.config.api.auth.lockout.max_failures;
    for (let i = 0; i < max; i++) {
      const r = await h.call("POST", "/api/v1/auth/password", {
        token: t.access_token,
        body: { current_password: `guess ${i}`, new_password: "another long passphrase" },
      });
      expect(r.status).toBe(401);
    }
    const blocked = await h.call("POST", "/api/v1/auth/password", {
      token: t.access_token,
      body: { current_password: PASSWORD, new_password: "another long passphrase" },
    });
    expect(blocked.status).toBe(429);
    expect(blocked.body.details.retry_after_seconds).toBeGreaterThan(0);
    const [u] = await h.deps.sql`select password_hash from users where email = ${email}`;
    expect(u?.password_hash).toBe(await passwordHash()); // unchanged
    h.clock.t += 16 * 60_000;
    const fresh = await login(h, email);
    const ok = await h.call("POST", "/api/v1/auth/password", {
      token: fresh.access_token,
      body: { current_password: PASSWORD, new_password: "another long passphrase" },
    });
    expect(ok.status).toBe(200);
  });

  test("MFA off: 409 when not on; wrong password or code 401, limited; right ones turn it off, audited", async () => {
    const email = "mfa-off@acme.test";
    await seedUser(h, email, "viewer", tenant);
    const t = await login(h, email);
    const notOn = await h.call("POST", "/api/v1/auth/mfa/disable", {
      token: t.access_token,
      body: { password: PASSWORD, code: "123456" },
    });
    expect(notOn.status).toBe(409);
    const en = await h.call("POST", "/api/v1/auth/mfa/enroll", { token: t.access_token });
    const secret = en.body.secret as string;
    const act = await h.call("POST", "/api/v1/auth/mfa/activate", {
      token: t.access_token,
      body: { code: await totpNow(secret, h.clock.t) },
    });
    expect(act.status).toBe(200);
    h.clock.t += 31_000;
    const badCode = await h.call("POST", "/api/v1/auth/mfa/disable", {
      token: t.access_token,
      body: { password: PASSWORD, code: "000000" },
    });
    expect(badCode.status).toBe(401);
    const max = h.deps.config.api.auth.lockout.max_failures;
    for (let i = 1; i < max; i++) {
      const r = await h.call("POST", "/api/v1/auth/mfa/disable", {
        token: t.access_token,
        body: { password: `guess ${i}`, code: await totpNow(secret, h.clock.t) },
      });
      expect(r.status).toBe(401);
    }
    const blocked = await h.call("POST", "/api/v1/auth/mfa/disable", {
      token: t.access_token,
      body: { password: PASSWORD, code: await totpNow(secret, h.clock.t) },
    });
    expect(blocked.status).toBe(429);
    const [still] = await h.deps.sql`select mfa_enabled from users where email = ${email}`;
    expect(still?.mfa_enabled).toBe(true);

    h.clock.t += 16 * 60_000; // the window ends (the access token expired with it: sign in with MFA again)
    const l = await h.call("POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } });
    const v = await h.call("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: l.body.mfa_token, code: await totpNow(secret, h.clock.t) },
    });
    expect(v.status).toBe(200);
    h.clock.t += 31_000; // the code of that step was used to sign in: the next one turns MFA off
    const off = await h.call("POST", "/api/v1/auth/mfa/disable", {
      token: v.body.access_token,
      body: { password: PASSWORD, code: await totpNow(secret, h.clock.t) },
    });
    expect(off.status).toBe(200);
    const [u] = await h.deps.sql`
      select mfa_enabled, totp_secret_encrypted, (select count(*)::int from user_recovery_codes r where r.user_id = users.id) as codes
      from users where email = ${email}`;
    expect(u).toEqual({ mfa_enabled: false, totp_secret_encrypted: null, codes: 0 });
    const [a] = await h.deps.sql`
      select count(*)::int as n from audit_logs where action = 'user.mfa_disabled' and actor = ${email}`;
    expect(a?.n).toBe(1);
  });
});

describe("principal cache (src/api/principal.ts): what must stop at once still does", () => {
  test("a revoked API key is refused on its next request, though its principal is cached", async () => {
    const admin = await login(h, "admin@acme.test");
    const k = await h.call("POST", "/api/v1/api-keys", {
      token: admin.access_token,
      body: { name: "ci", role: "viewer" },
    });
    expect(k.status).toBe(201);
    const use = () => h.call("GET", "/api/v1/agents", { headers: { "x-api-key": k.body.key } });
    expect((await use()).status).toBe(200);
    expect((await use()).status).toBe(200); // served from the cache
    const del = await h.call("DELETE", `/api/v1/api-keys/${k.body.id}`, { token: admin.access_token });
    expect(del.status).toBe(200);
    const r = await use();
    expect(r.status).toBe(401);
    expect(r.body.error).toContain("revoked");
  });

  test("a deleted user's access token is refused on its next request", async () => {
    const admin = await login(h, "admin@acme.test");
    await seedUser(h, "leaver@acme.test", "operator", tenant);
    const leaver = await login(h, "leaver@acme.test");
    const me = () => h.call("GET", "/api/v1/auth/me", { token: leaver.access_token });
    expect((await me()).status).toBe(200);
    const [u] = await h.deps.sql`select id from users where email = 'leaver@acme.test'`;
    const del = await h.call("DELETE", `/api/v1/users/${u?.id}`, { token: admin.access_token });
    expect(del.status).toBe(204);
    expect((await me()).status).toBe(401);
  });

  test("another tenant's user id: 404, and nobody is signed out", async () => {
    const other = await seedTenant(h, "other-co");
    await seedUser(h, "someone@other.test", "admin", other);
    const someone = await login(h, "someone@other.test");
    const [u] = await h.deps.sql`select id from users where email = 'someone@other.test'`;
    const admin = await login(h, "admin@acme.test");
    const del = await h.call("DELETE", `/api/v1/users/${u?.id}`, { token: admin.access_token });
    expect(del.status).toBe(404);
    expect((await h.call("GET", "/api/v1/auth/me", { token: someone.access_token })).status).toBe(200);
  });
});

describe("argon2id parameters", () => {
  test("a hash made with other parameters still verifies and is replaced at sign-in", async () => {
    const old = await Bun.password.hash(PASSWORD, { algorithm: "argon2id", memoryCost: 4096, timeCost: 1 });
    await h.deps.sql`
      insert into users (email, role, tenant_id, password_hash) values ('old@acme.test', 'viewer', ${tenant}, ${old})`;
    await login(h, "old@acme.test");
    const [u] = await h.deps.sql`select password_hash from users where email = 'old@acme.test'`;
    expect(u?.password_hash).not.toBe(old);
    expect(u?.password_hash).toContain(`$${PASSWORD_PARAMS}$`);
    expect(needsRehash(u?.password_hash as string)).toBe(false);
    await login(h, "old@acme.test"); // the new hash verifies
    const [again] = await h.deps.sql`select password_hash from users where email = 'old@acme.test'`;
    expect(again?.password_hash).toBe(u?.password_hash); // current parameters: left alone
  });

  test("a wrong password never rehashes", async () => {
    const old = await Bun.password.hash(PASSWORD, { algorithm: "argon2id", memoryCost: 4096, timeCost: 1 });
    await h.deps.sql`
      insert into users (email, role, tenant_id, password_hash) values ('old2@acme.test', 'viewer', ${tenant}, ${old})`;
    const r = await h.call("POST", "/api/v1/auth/login", {
      body: { email: "old2@acme.test", password: "wrong password here" },
    });
    expect(r.status).toBe(401);
    const [u] = await h.deps.sql`select password_hash from users where email = 'old2@acme.test'`;
    expect(u?.password_hash).toBe(old);
  });
});
