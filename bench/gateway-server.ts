/**
 * Child process of bench/gateway.ts: a real gateway (throwaway PostgreSQL + nats-server with
 * sync_interval always, from test/support) in its own process so its RSS is measured alone.
 * Prints one JSON line {address, caPem, token} on stdout, then serves until stdin closes.
 */
import { createTenant, createToken, startGateway } from "../test/gateway/harness.ts";
import { stopTestNats } from "../test/support/nats.ts";
import { stopTestCluster } from "../test/support/pg.ts";

process.env.SECUMON_LOG_LEVEL ??= "warn";
const h = await startGateway({
  max_connections: 100_000,
  max_streams_per_source: 16,
  rate_limiting: { enabled: false },
  enrollment_failures_per_minute: 100_000,
});
const tenant = await createTenant(h.sql);
const token = await createToken(h.sql, tenant, { maxUses: null });
console.log(JSON.stringify({ address: h.address, caPem: h.gw.caPem, token, tenant }));
for await (const _ of Bun.stdin.stream()) {
  // keep serving until the parent closes our stdin
}
await h.stop();
await Promise.all([stopTestCluster(), stopTestNats()]);
process.exit(0);
