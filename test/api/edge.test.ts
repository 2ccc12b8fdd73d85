/**
 * The rate limit's key (api.rate_limiting: per tenant + client address): X-Tenant-ID counts only when it names
 * a tenant that exists, so changing it on every request does not get around the limit.
 */
import { beforeAll, expect, test } from "bun:test";
import { type Harness, harness, seedTenant } from "./harness.ts";

let h: Harness;
let tenant: string;
const LIMIT = 5;

beforeAll(async () => {
  h = await harness({ rate_limiting: { enabled: true, requests_per_minute: LIMIT } });
  tenant = await seedTenant(h, "edge-a");
});

const me = (tenantHeader?: string) =>
  h.call("GET", "/api/v1/auth/me", { headers: tenantHeader ? { "x-tenant-id": tenantHeader } : {} });

test("a new X-Tenant-ID on every request shares one bucket: limited after requests_per_minute", async () => {
  const statuses: number[] = [];
  for (let i = 0; i < LIMIT + 3; i++) {
    // unknown UUIDs, junk and nothing at all: all "no tenant" for the limit
    const header = i % 3 === 0 ? crypto.randomUUID() : i % 3 === 1 ? `junk-${i}` : undefined;
    statuses.push((await me(header)).status);
  }
  expect(statuses.slice(0, LIMIT)).toEqual(Array(LIMIT).fill(401));
  expect(statuses.slice(LIMIT)).toEqual([429, 429, 429]);
  const limited = await me(crypto.randomUUID());
  expect(limited.body.errorType).toBe("RATE_LIMITED");
  expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
});

test("an existing tenant's id is a bucket of its own (tenant + address), limited in its turn", async () => {
  const statuses: number[] = [];
  for (let i = 0; i < LIMIT + 1; i++) statuses.push((await me(tenant.toUpperCase())).status);
  expect(statuses.slice(0, LIMIT)).toEqual(Array(LIMIT).fill(401));
  expect(statuses[LIMIT]).toBe(429);
  // a minute later every bucket is open again
  h.clock.t += 61_000;
  expect((await me(crypto.randomUUID())).status).toBe(401);
  expect((await me(tenant)).status).toBe(401);
});

test("a NUL character anywhere in the query or a JSON body: 422 naming where, before any statement runs", async () => {
  h.clock.t += 61_000; // a fresh rate-limit window for these requests
  const q = await h.call("GET", "/api/v1/admin/tenants?q=a%00b");
  expect(q.status).toBe(422);
  expect(q.body.details).toEqual([{ path: "query/q", message: expect.stringContaining("NUL") }]);
  const login = await h.call("POST", "/api/v1/auth/login", {
    body: { email: "a\u0000b@x.test", password: "whatever" },
  });
  expect(login.status).toBe(422);
  expect(login.body.details[0].path).toBe("body/email");
  const nested = await h.call("POST", "/api/v1/setup", {
    body: { setup_code: "x", email: "a@b.c", password: "p", tenant_name: "ok", extra: [{ k: "\u0000" }] },
  });
  expect(nested.status).toBe(422);
  expect(nested.body.details[0].path).toBe("body/extra/0/k");
  // the text \u0000 written out (an escaped backslash) is no NUL character
  const literal = await h.call("POST", "/api/v1/auth/login", {
    body: { email: "lit@x.test", password: "\\u0000" },
  });
  expect(literal.status).toBe(401);
});

test("answers the edge gives before routing (429, 413, 422) carry a request id too", async () => {
  h.clock.t += 61_000;
  const nul = await h.call("GET", "/api/v1/agents?q=%00", { headers: { "x-request-id": "edge-req-1" } });
  expect(nul.status).toBe(422);
  expect(nul.headers.get("x-request-id")).toBe("edge-req-1");
  const big = await h.call("POST", "/api/v1/auth/login", {
    raw: "x".repeat(h.deps.config.api.max_body_bytes + 1),
    headers: {
      "content-type": "application/json",
      "content-length": String(h.deps.config.api.max_body_bytes + 1),
    },
  });
  expect(big.status).toBe(413);
  expect(big.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  for (let i = 0; i < LIMIT; i++) await me();
  const limited = await me();
  expect(limited.status).toBe(429);
  expect(limited.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
});

test("CORS: an origin named in the config may send credentials; one allowed only through * may not", async () => {
  const c = await harness({ cors: { allowed_origins: ["https://ui.example.com", "*"] } });
  const pre = (origin: string) =>
    c.call("OPTIONS", "/api/v1/agents", {
      headers: { origin, "access-control-request-method": "GET" },
    });
  const named = await pre("https://ui.example.com");
  expect(named.headers.get("access-control-allow-origin")).toBe("https://ui.example.com");
  expect(named.headers.get("access-control-allow-credentials")).toBe("true");
  const any = await pre("https://elsewhere.test");
  expect(any.headers.get("access-control-allow-origin")).toBe("https://elsewhere.test");
  expect(any.headers.get("access-control-allow-credentials")).toBeNull();
});

test("behind a trusted proxy the client address is the one the proxy added, not one the client wrote", async () => {
  const p = await harness({ trust_proxy: true, auth: { lockout: { ip_max_failures: 2 } } });
  const attempt = (xff: string) =>
    p.call("POST", "/api/v1/auth/login", {
      body: { email: "nobody@proxy.test", password: "wrong" },
      headers: { "x-forwarded-for": xff, "user-agent": "xff-test" },
    });
  // the client prepends a new address each time; the proxy appends the real one
  expect((await attempt("1.1.1.1, 203.0.113.7")).status).toBe(401);
  expect((await attempt("2.2.2.2, 203.0.113.7")).status).toBe(401);
  expect((await attempt("3.3.3.3, 203.0.113.7")).status).toBe(429);
  // another real client is not blocked
  expect((await attempt("1.1.1.1, 198.51.100.9")).status).toBe(401);
});
