/**
 * The api role inside a real collector over a real port: first-boot setup, sign-in, CORS and rate limit, and the
 * wgmanager routes behind the same authentication.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { startCollector, testConfig } from "../support/collector.ts";
import { PASSWORD } from "./harness.ts";

let c: Awaited<ReturnType<typeof startCollector>>;
let dataDir: string;

beforeAll(async () => {
  const config = testConfig({
    roles: ["api", "wgmanager"],
    api: {
      port: 0,
      cors: { allowed_origins: ["https://*.example.com"] },
      rate_limiting: { enabled: true, requests_per_minute: 40 },
    },
  });
  dataDir = config.data_dir;
  c = await startCollector(config);
});
afterAll(() => c?.stop());

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${c.base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });

test("setup code: created 0600 while no user exists, wrong code refused, right code creates the superadmin once", async () => {
  const file = join(dataDir, "secrets", "setup-code");
  expect(existsSync(file)).toBe(true);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  const code = readFileSync(file, "utf8").trim();
  const body = { email: "root@site.test", password: PASSWORD, tenant_name: "Client Site" };
  const wrong = await post("/api/v1/setup", { ...body, setup_code: "nope" });
  expect(wrong.status).toBe(401);
  const ok = await post("/api/v1/setup", { ...body, setup_code: code });
  expect(ok.status).toBe(200);
  const out = (await ok.json()) as { tenant: { slug: string }; session: { access_token: string } };
  expect(out.tenant.slug).toBe("client-site");
  expect(existsSync(file)).toBe(false);
  const again = await post("/api/v1/setup", { ...body, setup_code: code });
  expect(again.status).toBe(409);

  const login = await post("/api/v1/auth/login", { email: "root@site.test", password: PASSWORD });
  expect(login.status).toBe(200);
  const { access_token } = (await login.json()) as { access_token: string };
  const tenants = await fetch(`${c.base}/api/v1/admin/tenants`, {
    headers: { authorization: `Bearer ${access_token}` },
  });
  expect(tenants.status).toBe(200);
  expect(((await tenants.json()) as { data: unknown[] }).data).toHaveLength(1);

  // the wgmanager's routes take the same tokens, superadmins only (WireGuard is disabled here: still answers)
  const wg = `${c.base}/api/v1/wireguard/server`;
  expect((await fetch(wg)).status).toBe(401);
  expect((await fetch(wg, { headers: { authorization: "Bearer forged.token.value" } })).status).toBe(401);
  const server = await fetch(wg, { headers: { authorization: `Bearer ${access_token}` } });
  expect(server.status).not.toBe(401);
  expect(server.status).not.toBe(403);
});

test("a signed-out token is refused at once by the wgmanager's routes too (one in-memory store per collector)", async () => {
  const login = await post("/api/v1/auth/login", { email: "root@site.test", password: PASSWORD });
  const { access_token } = (await login.json()) as { access_token: string };
  const wg = `${c.base}/api/v1/wireguard/server`;
  const headers = { authorization: `Bearer ${access_token}` };
  expect((await fetch(wg, { headers })).status).not.toBe(401);
  expect((await post("/api/v1/auth/logout", {}, headers)).status).toBe(200);
  const after = await fetch(wg, { headers });
  expect(after.status).toBe(401);
  expect(((await after.json()) as { error: string }).error).toContain("signed out");
});

test("CORS: allowed wildcard origin gets the headers on preflight, others do not", async () => {
  const pre = await fetch(`${c.base}/api/v1/agents`, {
    method: "OPTIONS",
    headers: { origin: "https://ui.example.com", "access-control-request-method": "GET" },
  });
  expect(pre.status).toBe(204);
  expect(pre.headers.get("access-control-allow-origin")).toBe("https://ui.example.com");
  expect(pre.headers.get("access-control-allow-headers")).toContain("X-Tenant-ID");
  const bad = await fetch(`${c.base}/api/v1/agents`, {
    method: "OPTIONS",
    headers: { origin: "https://evil.test", "access-control-request-method": "GET" },
  });
  expect(bad.headers.get("access-control-allow-origin")).toBeNull();
});

test("rate limit per client: 429 with Retry-After past requests_per_minute; /health is not limited", async () => {
  let limited: Response | null = null;
  for (let i = 0; i < 60 && !limited; i++) {
    const r = await fetch(`${c.base}/api/v1/auth/me`, { headers: { "x-tenant-id": "rl-test" } });
    if (r.status === 429) limited = r;
  }
  if (!limited) throw new Error("never rate limited");
  expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
  expect(((await limited.json()) as { errorType: string }).errorType).toBe("RATE_LIMITED");
  expect((await fetch(`${c.base}/health`)).status).toBe(200);
});
