/** A throwaway redis-server on a free loopback port (no persistence) for the shared-presence tests. */
import { freePort } from "../../src/supervisor/ports.ts";

export interface TestRedis {
  url: string;
  stop(): Promise<void>;
}

async function redisUp(u: string): Promise<boolean> {
  const { default: Redis } = await import("ioredis");
  const r = new Redis(u, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false });
  r.on("error", () => {});
  try {
    await r.connect();
    return (await r.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export async function startRedis(): Promise<TestRedis> {
  const port = freePort();
  const child = Bun.spawn(
    ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdout: "ignore", stderr: "ignore" },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; !(await redisUp(url)); i++) {
    if (i > 200) {
      child.kill();
      throw new Error("redis-server did not accept connections within 10 s (is redis-server installed?)");
    }
    await Bun.sleep(50);
  }
  return {
    url,
    async stop() {
      child.kill();
      await child.exited;
    },
  };
}
