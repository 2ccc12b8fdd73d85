/**
 * Child process of bench/gateway.ts: a real gateway (throwaway PostgreSQL from test/support, and a nats-server
 * of its own with sync_interval SYNC_INTERVAL, default always) in its own process so its RSS and CPU are
 * measured alone. Prints one JSON line {address, caPem, token, natsPid} on stdout, then serves until stdin closes.
 */
import { executable } from "../src/assets/binaries.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { natsChild, natsUrl } from "../src/supervisor/nats.ts";
import { freePort } from "../src/supervisor/ports.ts";
import { createTenant, createToken, startGateway } from "../test/gateway/harness.ts";
import { stopTestCluster } from "../test/support/pg.ts";
import { removeTempDirs, tempDir } from "../test/support/tmp.ts";

process.env.SECUMON_LOG_LEVEL ??= "warn";
const syncInterval = process.env.SYNC_INTERVAL ?? "always";
if (!/^(always|\d+(ms|s|m|h))$/.test(syncInterval)) {
  throw new Error(`SYNC_INTERVAL must be "always" or a duration such as 2m or 500ms, not ${syncInterval}`);
}
const dataDir = tempDir("secumon-bench-nats-");
const port = freePort();
const nats = natsChild(
  { binary: await executable("nats-server", dataDir), dataDir, host: "127.0.0.1", port, syncInterval },
  { initialMs: 200, maxMs: 2000, resetAfterMs: 60_000 },
  silentLogger(),
);
await nats.start();
const h = await startGateway(
  {
    max_connections: 100_000,
    max_streams_per_source: 16,
    rate_limiting: { enabled: false },
    enrollment_failures_per_minute: 100_000,
  },
  {},
  { natsUrl: natsUrl({ host: "127.0.0.1", port }), shards: Number(process.env.SHARDS ?? 1) },
);
const tenant = await createTenant(h.sql);
const token = await createToken(h.sql, tenant, { maxUses: null });
console.log(
  JSON.stringify({ address: h.address, caPem: h.gw.caPem, token, tenant, natsPid: nats.pid, dataDir }),
);
for await (const _ of Bun.stdin.stream()) {
  // keep serving until the parent closes our stdin
}
await h.stop();
await Promise.all([stopTestCluster(), nats.stop()]);
removeTempDirs();
process.exit(0);
