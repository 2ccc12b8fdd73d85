/**
 * Shared counters: the in-memory store and the Redis store (a real redis-server on a free loopback port) behave
 * the same; two API instances on one Redis share the sign-in back-off per address and the request rate limit.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type CounterStore, memoryStore, redisStore } from "../../src/api/lib/store.ts";
import { freePort } from "../../src/supervisor/ports.ts";
import { harness, seedTenant, seedUser } from "./harness.ts";

let redis: ReturnType<typeof Bun.spawn> | null = null;
let url = "";
const stores: CounterStore[] = [];

beforeAll(async () => {
  const port = freePort();
  redis = Bun.spawn(
    ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdout: "ignore", stderr: "ignore" },
  );
  url = `redis://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const s = await redisStore(url).catch(() => null);
    if (s) {
      await s.close();
      break;
    }
    if (i > 200) throw new Error("redis-server did not accept connections within 10 s");
    await Bun.sleep(50);
  }
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  redis?.kill();
  await redis?.exited;
});

async function both(): Promise<CounterStore[]> {
  const r = await redisStore(url, `t${crypto.randomUUID()}:`);
  stores.push(r);
  return [memoryStore(), r];
}

describe("counter stores", () => {
  test("hit counts within a window and reports the time left", async () => {
    for (const s of await both()) {
      expect((await s.hit("k", 60_000)).count).toBe(1);
      const second = await s.hit("k", 60_000);
      expect(second.count).toBe(2);
      expect(second.resetMs).toBeGreaterThan(0);
      expect(second.resetMs).toBeLessThanOrEqual(60_000);
    }
  });

  test("flags expire; del removes", async () => {
    for (const s of await both()) {
      await s.flag("f", 60_000);
      expect(await s.has("f")).toBe(true);
      await s.del("f");
      expect(await s.has("f")).toBe(false);
      await s.flag("short", 1);
      await Bun.sleep(20);
      expect(await s.has("short")).toBe(false);
    }
  });

  test("unreachable Redis: a clear error naming redis.url", async () => {
    const err = await redisStore(`redis://127.0.0.1:${freePort()}`).catch((e) => e);
    expect(String(err.message)).toContain("redis.url");
  });
});

test("two API instances on one Redis share the per-address sign-in block", async () => {
  const prefix = `shared${crypto.randomUUID()}:`;
  const s1 = await redisStore(url, prefix);
  const s2 = await redisStore(url, prefix);
  stores.push(s1, s2);
  const a = await harness({ auth: { lockout: { ip_max_failures: 3 } } }, s1);
  const b = await harness({ auth: { lockout: { ip_max_failures: 3 } } }, s2);
  const t = await seedTenant(a, "x");
  await seedUser(a, "u@x.test", "viewer", t);
  for (let i = 0; i < 3; i++) {
    const r = await a.call("POST", "/api/v1/auth/login", {
      body: { email: `nobody${i}@x.test`, password: "wrong" },
    });
    expect(r.status).toBe(401);
  }
  // instance b (another database even) sees the same address blocked
  const blocked = await b.call("POST", "/api/v1/auth/login", {
    body: { email: "u@x.test", password: "whatever" },
  });
  expect(blocked.status).toBe(429);
});

test("two API instances on one Redis share the request rate limit (api.rate_limiting)", async () => {
  const prefix = `rl${crypto.randomUUID()}:`;
  const s1 = await redisStore(url, prefix);
  const s2 = await redisStore(url, prefix);
  stores.push(s1, s2);
  const limit = { rate_limiting: { enabled: true, requests_per_minute: 4 } };
  const a = await harness(limit, s1);
  const b = await harness(limit, s2);
  const statuses: number[] = [];
  for (const inst of [a, b, a, b, a, b]) statuses.push((await inst.call("GET", "/api/v1/auth/me")).status);
  // four requests in all are allowed, whichever instance answers them; then both refuse
  expect(statuses).toEqual([401, 401, 401, 401, 429, 429]);
});
