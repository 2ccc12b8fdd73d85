/**
 * Shared counters and flags for rate limits, sign-in back-off and session revocation: in memory on a single
 * node, Redis (ioredis) when `redis.url` is set, so several API instances share them (DESIGN.md section 3).
 */
import { connectRedis } from "../../storage/redis.ts";

export interface CounterStore {
  /** Adds one to `key` in a fixed window of `windowMs`; returns the count and ms until the window ends. */
  hit(key: string, windowMs: number): Promise<{ count: number; resetMs: number }>;
  /** Sets a flag that expires after `ttlMs`. */
  flag(key: string, ttlMs: number): Promise<void>;
  has(key: string): Promise<boolean>;
  del(key: string): Promise<void>;
  close(): Promise<void>;
  readonly kind: "memory" | "redis";
}

export function memoryStore(now: () => number = Date.now): CounterStore {
  const counters = new Map<string, { count: number; until: number }>();
  const flags = new Map<string, number>();
  let sweeps = 0;
  const sweep = () => {
    if (++sweeps % 1000 !== 0) return;
    const t = now();
    for (const [k, v] of counters) if (v.until <= t) counters.delete(k);
    for (const [k, v] of flags) if (v <= t) flags.delete(k);
  };
  return {
    kind: "memory",
    async hit(key, windowMs) {
      sweep();
      const t = now();
      const c = counters.get(key);
      if (!c || c.until <= t) {
        counters.set(key, { count: 1, until: t + windowMs });
        return { count: 1, resetMs: windowMs };
      }
      c.count++;
      return { count: c.count, resetMs: c.until - t };
    },
    async flag(key, ttlMs) {
      sweep();
      flags.set(key, now() + ttlMs);
    },
    async has(key) {
      const u = flags.get(key);
      return u !== undefined && u > now();
    },
    async del(key) {
      counters.delete(key);
      flags.delete(key);
    },
    async close() {},
  };
}

const HIT = `local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {c, redis.call('PTTL', KEYS[1])}`;

export async function redisStore(url: string, prefix = "secumon:"): Promise<CounterStore> {
  const r = await connectRedis(url, "the API", "a single node");
  const k = (key: string) => `${prefix}${key}`;
  return {
    kind: "redis",
    async hit(key, windowMs) {
      const [count, ttl] = (await r.eval(HIT, 1, k(key), String(windowMs))) as [number, number];
      return { count, resetMs: ttl > 0 ? ttl : windowMs };
    },
    async flag(key, ttlMs) {
      await r.set(k(key), "1", "PX", Math.max(1, Math.ceil(ttlMs)));
    },
    async has(key) {
      return (await r.exists(k(key))) === 1;
    },
    async del(key) {
      await r.del(k(key));
    },
    async close() {
      await r.quit().catch(() => r.disconnect());
    },
  };
}
