import { readFileSync } from "node:fs";
/** Starts a whole collector in-process on free ports and a temp data directory. */
import { type Collector, createCollector } from "../../src/app/collector.ts";
import { loadConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { freePort } from "../../src/supervisor/ports.ts";
import { tempDir } from "./tmp.ts";

export function testConfig(overrides: Record<string, unknown> = {}): Config {
  return loadConfig({
    env: {},
    overrides: {
      data_dir: tempDir("secumon-collector-"),
      api: { port: 0 },
      nats: { port: freePort() },
      gateway: { grpc_port: freePort() },
      database: { embedded: { port: freePort() } },
      supervisor: { restart_backoff_initial: "100ms", restart_backoff_max: "1s", stop_timeout: "15s" },
      ...overrides,
    },
  });
}

export async function startCollector(config: Config = testConfig()): Promise<Collector & { base: string }> {
  const c = createCollector({ config, log: silentLogger() });
  await c.start();
  return Object.assign(c, { base: `http://127.0.0.1:${c.httpPort}` });
}

export async function waitFor<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/** True while the process exists and is not a zombie waiting to be reaped. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
