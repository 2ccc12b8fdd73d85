/**
 * Tenants, users, enrollment tokens and API keys: what each route stores and returns, and every refusal a
 * user can reach (the route × caller matrix, in matrix.test.ts, checks only who may call what).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { sha256 } from "../../src/auth/secrets.ts";
import { hashEnrollmentToken } from "../../src/pki/tokens.ts";
import { type Harness, harness, login, PASSWORD, seedTenant, seedUser } from "./harness.ts";

let h: Harness;
let tenant: string;
let other: string;
let admin: string;
let adminId: string;
let root: string;

beforeAll(async () => {
  h = await harness();
  tenant = await seedTenant(h, "acc-a");
  other = await seedTenant(h, "acc-b");
  adminId = await seedUser(h, "admin@acc.test", "admin", tenant);
  await seedUser(h, "root@acc.test", "superadmin", null);
  admin = (await login(h, "admin@acc.test")).access_token;
  root = (await login(h, "root@acc.test")).access_token;
});

const as = (token: string) => ({
  get: (path: string) => h.call("GET", path, { token }),
  post: (path: string, body?: unknown) => h.call("POST", path, { token, body }),
  patch: (path: string, body: unknown) => h.call("PATCH", path, { token, body }),
  del: (path: string) => h.call("DELETE", path, { token }),
});
const audited = async (id: string, action: string) =>
  (await h.deps.sql`select * from audit_logs where resource_id = ${id} and action = ${action}`)[0];

describe("tenants", () => {
  test("superadmin: create (slug from the name), duplicate slug 409, bad slug 422, settings merged, delete cascades", async () => {
    const r = as(root);
    const made = await r.post("/api/v1/admin/tenants", {
      name: "Café Électrique",
      settings: { timezone: "Europe/Paris" },
    });
    expect(made.status).toBe(201);
    expect(made.body.slug).toBe("cafe-electrique");
    const dup = await r.post("/api/v1/admin/tenants", { name: "Other", slug: "cafe-electrique" });
    expect(dup.status).toBe(409);
    const bad = await r.post("/api/v1/admin/tenants", {
      name: "x",
      slug: "Not A Slug",
      settings: { color: "red" },
    });
    expect(bad.status).toBe(422);
    const paths = bad.body.details.map((d: { path: string }) => d.path);
    expect(paths).toContain("body/slug");
    expect(paths).toContain("body/settings/color");

    const id = made.body.id as string;
    const patched = await r.patch(`/api/v1/admin/tenants/${id}`, { settings: { mfa_required: false } });
    expect(patched.body.settings).toEqual({ timezone: "Europe/Paris", mfa_required: false });
    expect((await audited(id, "tenant.update"))?.old_value.settings).toEqual({ timezone: "Europe/Paris" });

    const u = await seedUser(h, "gone@cafe.test", "viewer", id);
    expect((await r.del(`/api/v1/admin/tenants/${id}`)).status).toBe(204);
    expect((await r.get(`/api/v1/admin/tenants/${id}`)).status).toBe(404);
    expect((await r.del(`/api/v1/admin/tenants/${id}`)).status).toBe(404);
    expect(await h.deps.sql`select 1 from users where id = ${u}`).toHaveLength(0);
    const [gone] = await h.deps
      .sql`select tenant_id, old_value from audit_logs where resource_id = ${id} and action = 'tenant.delete'`;
    expect(gone?.tenant_id).toBeNull(); // a platform event: the tenant's own entries went with it
    expect(gone?.old_value.slug).toBe("cafe-electrique");
  });

  test("a tenant admin reads and renames its own tenant, but cannot change its slug", async () => {
    const a = as(admin);
    expect((await a.get("/api/v1/tenant")).body.id).toBe(tenant);
    const renamed = await a.patch("/api/v1/tenant", { name: "  Acc A renamed  " });
    expect(renamed.status).toBe(200);
    expect(renamed.body.name).toBe("Acc A renamed");
    const slug = await a.patch("/api/v1/tenant", { slug: "stolen" });
    expect(slug.status).toBe(422);
    expect(slug.body.details[0].path).toBe("body/slug");
  });
});

describe("users", () => {
  test("create (password optional, policy checked), duplicate e-mail 409, superadmin role 422, never a hash in answers", async () => {
    const a = as(admin);
    const short = await a.post("/api/v1/users", { email: "s@acc.test", role: "viewer", password: "short" });
    expect(short.status).toBe(422);
    expect(short.body.details[0].path).toBe("body/password");
    const made = await a.post("/api/v1/users", {
      email: "new@acc.test",
      role: "operator",
      password: PASSWORD,
    });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ email: "new@acc.test", role: "operator", tenant_id: tenant });
    expect(JSON.stringify(made.body)).not.toContain("argon2");
    const created = await audited(made.body.id, "user.create");
    expect(JSON.stringify(created)).not.toContain("argon2");
    expect((await a.post("/api/v1/users", { email: "NEW@acc.test", role: "viewer" })).status).toBe(409);
    const root = await a.post("/api/v1/users", { email: "up@acc.test", role: "superadmin" });
    expect(root.status).toBe(422);
    expect(root.body.details[0].path).toBe("body/role");
    const sso = await a.post("/api/v1/users", { email: "sso-only@acc.test", role: "viewer" });
    expect(sso.status).toBe(201);
    const noPassword = await h.call("POST", "/api/v1/auth/login", {
      body: { email: "sso-only@acc.test", password: PASSWORD },
    });
    expect(noPassword.status).toBe(401);
  });

  test("an admin cannot change its own role, disable or delete itself (403); others' changes sign them out", async () => {
    const a = as(admin);
    expect((await a.patch(`/api/v1/users/${adminId}`, { role: "viewer" })).status).toBe(403);
    expect((await a.patch(`/api/v1/users/${adminId}`, { disabled: true })).status).toBe(403);
    expect((await a.del(`/api/v1/users/${adminId}`)).status).toBe(403);
    expect((await a.patch(`/api/v1/users/${adminId}`, { name: "Me" })).status).toBe(200);

    const id = await seedUser(h, "demoted@acc.test", "operator", tenant);
    const t = await login(h, "demoted@acc.test");
    const r = await a.patch(`/api/v1/users/${id}`, { role: "viewer", password: "a brand new passphrase" });
    expect(r.status).toBe(200);
    expect((await h.call("GET", "/api/v1/auth/me", { token: t.access_token })).status).toBe(401);
    const entry = await audited(id, "user.update");
    expect(entry?.old_value.role).toBe("operator");
    expect(entry?.new_value).toMatchObject({ role: "viewer", password: "changed" });
    expect(JSON.stringify(entry)).not.toContain("brand new");
    expect((await login(h, "demoted@acc.test", "a brand new passphrase")).access_token).toBeString();
  });

  test("unlock clears a lock-out; disable refuses sign-in; another tenant's user is 404", async () => {
    const a = as(admin);
    const id = await seedUser(h, "locked@acc.test", "viewer", tenant);
    await h.deps
      .sql`update users set locked_until = now() + interval '1 hour', lockouts = 3 where id = ${id}`;
    const before = await h.call("POST", "/api/v1/auth/login", {
      body: { email: "locked@acc.test", password: PASSWORD },
    });
    expect(before.status).toBe(429);
    const unlocked = await a.patch(`/api/v1/users/${id}`, { unlock: true });
    expect(unlocked.body.locked_until).toBeNull();
    expect((await login(h, "locked@acc.test")).access_token).toBeString();
    await a.patch(`/api/v1/users/${id}`, { disabled: true });
    const disabled = await h.call("POST", "/api/v1/auth/login", {
      body: { email: "locked@acc.test", password: PASSWORD },
    });
    expect(disabled.status).toBe(401);

    const theirs = await seedUser(h, "theirs@acc-b.test", "viewer", other);
    expect((await a.get(`/api/v1/users/${theirs}`)).status).toBe(404);
    expect((await a.patch(`/api/v1/users/${theirs}`, { disabled: true })).status).toBe(404);
    expect((await a.del(`/api/v1/users/${theirs}`)).status).toBe(404);
    const [still] = await h.deps.sql`select disabled from users where id = ${theirs}`;
    expect(still?.disabled).toBe(false);
  });
});

describe("enrollment tokens", () => {
  test("shown once, stored hashed, bounded expiry; revoking makes it inactive", async () => {
    const a = as(admin);
    const made = await a.post("/api/v1/enrollment-tokens", {
      label: "rack 4",
      principal_kind: "probe",
      max_uses: 3,
    });
    expect(made.status).toBe(201);
    const token = made.body.token as string;
    expect(token.length).toBeGreaterThan(40);
    const [row] = await h.deps.sql`select token_hash from enrollment_tokens where id = ${made.body.id}`;
    expect(Buffer.from(row?.token_hash).equals(hashEnrollmentToken(token))).toBe(true);
    const listed = await a.get("/api/v1/enrollment-tokens?active=true");
    expect(listed.body.data.map((x: { id: string }) => x.id)).toContain(made.body.id);
    expect(JSON.stringify(listed.body)).not.toContain(token);
    expect(JSON.stringify(await audited(made.body.id, "enrollment_token.create"))).not.toContain(token);

    const tooLong = await a.post("/api/v1/enrollment-tokens", { expires_in_seconds: 400 * 86400 });
    expect(tooLong.status).toBe(422);
    expect(tooLong.body.details[0].path).toBe("body/expires_in_seconds");
    const kind = await a.post("/api/v1/enrollment-tokens", { principal_kind: "superuser" });
    expect(kind.status).toBe(422);

    const revoked = await a.del(`/api/v1/enrollment-tokens/${made.body.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked_at).toBeString();
    const active = await a.get("/api/v1/enrollment-tokens?active=true");
    expect(active.body.data.map((x: { id: string }) => x.id)).not.toContain(made.body.id);
    expect((await a.del(`/api/v1/enrollment-tokens/${crypto.randomUUID()}`)).status).toBe(404);
  });
});

describe("API keys", () => {
  test("scoped to a role and the tenant, hashed, expiring; Bearer or X-API-Key", async () => {
    const a = as(admin);
    const made = await a.post("/api/v1/api-keys", { name: "ci", role: "viewer", expires_in_seconds: 3600 });
    expect(made.status).toBe(201);
    const key = made.body.key as string;
    expect(key.startsWith("smk_")).toBe(true);
    const [row] = await h.deps.sql`select key_hash from api_keys where id = ${made.body.id}`;
    expect(Buffer.from(row?.key_hash).equals(sha256(key))).toBe(true);
    const listed = await a.get("/api/v1/api-keys");
    expect(JSON.stringify(listed.body)).not.toContain(key);

    expect((await h.call("GET", "/api/v1/agents", { headers: { "x-api-key": key } })).status).toBe(200);
    expect((await h.call("GET", "/api/v1/agents", { token: key })).status).toBe(200);
    const write = await h.call("POST", "/api/v1/targets", {
      token: key,
      body: { name: "t", address: "x.test", type: "http" },
    });
    expect(write.status).toBe(403); // a viewer key reads only
    const elsewhere = await h.call("GET", "/api/v1/agents", {
      token: key,
      headers: { "x-tenant-id": other },
    });
    expect(elsewhere.status).toBe(404);
    expect((await h.call("GET", "/api/v1/auth/me", { token: key })).body).toEqual({
      kind: "apikey",
      role: "viewer",
      tenant_id: tenant,
    });
    const pw = await h.call("POST", "/api/v1/auth/password", {
      token: key,
      body: { current_password: "x", new_password: "a long enough passphrase" },
    });
    expect(pw.status).toBe(401);

    h.clock.t += 3601_000;
    const expired = await h.call("GET", "/api/v1/agents", { token: key });
    expect(expired.status).toBe(401);
    expect(expired.body.error).toContain("expired");

    const forged = await h.call("GET", "/api/v1/agents", { token: `smk_${"A".repeat(43)}` });
    expect(forged.status).toBe(401);
    const superKey = await as((await login(h, "admin@acc.test")).access_token).post("/api/v1/api-keys", {
      name: "root",
      role: "superadmin",
    });
    expect(superKey.status).toBe(422);
    expect(superKey.body.details[0].path).toBe("body/role");
  });
});
