/**
 * One throwaway nats-server (JetStream, file store in a temp dir) per test run, started on first use with the
 * supervisor's own code. SECUMON_TEST_NATS_URL uses an existing server instead.
 */
import { executable } from "../../src/assets/binaries.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import type { SupervisedChild } from "../../src/supervisor/child.ts";
import { natsChild, natsUrl } from "../../src/supervisor/nats.ts";
import { freePort } from "../../src/supervisor/ports.ts";
import { tempDir } from "./tmp.ts";

export interface PrivateNats {
  url: string;
  child: SupervisedChild;
  dataDir: string;
  port: number;
}

/**
 * A nats-server of the caller's own (JetStream, `sync_interval: always`, file store in a temp dir), started:
 * for tests and benchmarks that fill, restart or reconfigure their server.
 */
export async function privateNats(opts: { maxStoreBytes?: number } = {}): Promise<PrivateNats> {
  const dataDir = tempDir("secumon-nats-");
  const port = freePort();
  const child = natsChild(
    {
      binary: await executable("nats-server", dataDir),
      dataDir,
      host: "127.0.0.1",
      port,
      syncInterval: "always",
      ...(opts.maxStoreBytes ? { maxStoreBytes: opts.maxStoreBytes } : {}),
    },
    { initialMs: 100, maxMs: 1000, resetAfterMs: 60_000 },
    silentLogger(),
  );
  await child.start();
  return { url: natsUrl({ host: "127.0.0.1", port }), child, dataDir, port };
}

let server: Promise<{ url: string; child: SupervisedChild | null }> | null = null;

/** The run's shared nats-server, started on first use (SECUMON_TEST_NATS_URL: an existing one instead). */
export async function testNats(): Promise<string> {
  server ??= (async () => {
    const external = process.env.SECUMON_TEST_NATS_URL;
    if (external) return { url: external, child: null };
    const { url, child } = await privateNats();
    return { url, child };
  })();
  return (await server).url;
}

export async function stopTestNats(): Promise<void> {
  if (!server) return;
  const s = await server.catch(() => null);
  server = null;
  await s?.child?.stop();
}
