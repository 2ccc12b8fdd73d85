/**
 * make bench-alerting: evaluation cost and alert latency of the alerter against a throwaway PostgreSQL.
 *
 * 1. Load: TENANTS (200) tenants × 10 agents, 10 rules per tenant (threshold avg/max/last/rate, change,
 *    anomaly, absent, label matchers) over 10 minutes of system_metrics and disk_metrics samples every 15 s
 *    = 2,000 rules evaluating 20,000 (rule, series) pairs per cycle; ~10 % of agents over the thresholds.
 *    Reports the first cycle (everything new fires: instances, history and outbox written) and the steady
 *    cycles after it (median and max of CYCLES).
 * 2. Latency, with that load evaluating every 1 s and delivery workers running: a sample over the threshold
 *    committed in PostgreSQL → the signed webhook received by a local receiver; SAMPLES times, p50/p99.
 *    Measured from the row's commit (the alerter's own share).
 * 3. End to end (alerting-e2e.ts), with the same load evaluating every 1 s in a whole in-process collector
 *    (roles gateway, ingestion, alerter): a batch over the threshold acknowledged by the gateway → the webhook
 *    received; E2E_SAMPLES (20) rounds of fire then resolve, p50/p99.
 * Goal (issue #5): eval ≤ 1 s per cycle for 2,000 rules × 20,000 series; latency p99 ≤ 5 s at a 1 s interval.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { channelConfigContext } from "../src/alerter/notify/channels.ts";
import { createAlerter } from "../src/alerter/service.ts";
import { loadConfig } from "../src/config/load.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { createKeyring } from "../src/security/keyring.ts";
import { connect } from "../src/storage/db.ts";
import { migratedDatabase, stopTestCluster } from "../test/support/pg.ts";
import { removeTempDirs } from "../test/support/tmp.ts";
import { measureGatewayAckToWebhook } from "./alerting-e2e.ts";
import { printMachine, result } from "./machine.ts";

const TENANTS = Number(process.env.TENANTS ?? 200);
const AGENTS = 10;
const CYCLES = Number(process.env.CYCLES ?? 10);
const SAMPLES = Number(process.env.SAMPLES ?? 30);
const E2E_SAMPLES = Number(process.env.E2E_SAMPLES ?? 20);

printMachine();
const url = await migratedDatabase();
const sql = connect(url, { max: 10, log: silentLogger() });
const key = randomBytes(32);
const keyring = createKeyring(key);
const received = new Map<string, number>();
const hook = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const body = (await req.json()) as {
      rule: { name: string };
      kind: string;
      alerts: { labels: Record<string, string> }[];
    };
    // only the latency rule's first page counts (the load's absent rule also pages the new lat-* agents)
    if (body.rule.name === "latency" && body.kind === "firing")
      for (const a of body.alerts) if (a.labels.agent) received.set(a.labels.agent, performance.now());
    return new Response("ok");
  },
});

const rulesFor = (i: number) => {
  const c = (x: Record<string, unknown>) => ({ conditions: [x] });
  return [
    [
      "threshold",
      c({ metric: "system.cpu_usage", aggregation: "avg", window: "1m", operator: "gt", threshold: 80 }),
    ],
    [
      "threshold",
      c({ metric: "system.cpu_usage", aggregation: "max", window: "5m", operator: "gt", threshold: 97 }),
    ],
    [
      "threshold",
      c({ metric: "system.load_avg_1", aggregation: "last", window: "2m", operator: "gt", threshold: 8 }),
    ],
    [
      "threshold",
      c({
        metric: "system.mem_usage_percent",
        aggregation: "avg",
        window: "5m",
        operator: "gt",
        threshold: 90,
      }),
    ],
    [
      "threshold",
      c({ metric: 'disk.usage_percent{mountpoint="/"}', aggregation: "last", window: "1m", threshold: 85 }),
    ],
    ["threshold", c({ metric: "disk.read_bytes", aggregation: "rate", window: "5m", threshold: 5e6 })],
    [
      "change",
      c({
        metric: "system.cpu_usage",
        aggregation: "avg",
        window: "1m",
        offset: "5m",
        mode: "percent",
        threshold: 200,
      }),
    ],
    [
      "anomaly",
      c({
        metric: "system.load_avg_1",
        aggregation: "avg",
        window: "1m",
        baseline: "9m",
        min_history: "5m",
        threshold: 4,
      }),
    ],
    ["absent", c({ metric: "system.cpu_usage", absent_for: "2m" })],
    [
      "threshold",
      c({
        metric: "system.swap_used",
        aggregation: "last",
        window: "1m",
        operator: "ge",
        threshold: 1e9 + i,
      }),
    ],
  ] as const;
};

const t0 = performance.now();
const now = Date.now();
const tenantIds: string[] = [];
for (let t = 0; t < TENANTS; t++) {
  const [row] = await sql<
    { id: string }[]
  >`INSERT INTO tenants (name, slug) VALUES (${`T${t}`}, ${`t-${t}-${randomUUID().slice(0, 6)}`}) RETURNING id::text`;
  const tenant = row!.id;
  tenantIds.push(tenant);
  const channel = randomUUID();
  await sql`INSERT INTO notification_channels (id, tenant_id, name, type, config_encrypted)
            VALUES (${channel}, ${tenant}, 'hook', 'webhook', ${keyring.seal(JSON.stringify({ url: `http://127.0.0.1:${hook.port}/` }), channelConfigContext(channel))})`;
  await sql`INSERT INTO agents (tenant_id, name, status, created_at)
            SELECT ${tenant}, 'agent-' || g, 'online', now() - interval '1 day' FROM generate_series(1, ${AGENTS}) g`;
  for (const [k, [type, conditions]] of rulesFor(t).entries()) {
    const [r] = await sql<
      { id: string }[]
    >`INSERT INTO alert_rules (tenant_id, name, severity, type, conditions)
      VALUES (${tenant}, ${`rule-${k}`}, 'warning', ${type}, ${sql.json(conditions as never)}) RETURNING id::text`;
    await sql`INSERT INTO alert_rule_channels (tenant_id, rule_id, channel_id) VALUES (${tenant}, ${r!.id}, ${channel})`;
  }
}
// 10 minutes of samples every 15 s; agent-1 of each tenant runs hot (cpu 85, disk 90 %)
await sql`
  INSERT INTO system_metrics (time, tenant_id, agent_id, cpu_usage, load_avg_1, mem_total, mem_used, swap_used)
  SELECT ts, a.tenant_id, a.id, CASE WHEN a.name = 'agent-1' THEN 85 ELSE 20 + random() * 30 END, random() * 4,
         16e9, 8e9 + random() * 2e9, 0
    FROM agents a, generate_series(${new Date(now - 600_000)}::timestamptz, ${new Date(now)}::timestamptz, interval '15 seconds') ts`;
await sql`
  INSERT INTO disk_metrics (time, tenant_id, agent_id, device, mountpoint, usage_percent, read_bytes)
  SELECT ts, a.tenant_id, a.id, 'sda1', '/', CASE WHEN a.name = 'agent-1' THEN 90 ELSE 40 END,
         (extract(epoch FROM ts) * 1000)::bigint
    FROM agents a, generate_series(${new Date(now - 600_000)}::timestamptz, ${new Date(now)}::timestamptz, interval '15 seconds') ts`;
await sql`ANALYZE`;
const [counts] = await sql<{ rules: number; agents: number; rows: number }[]>`
  SELECT (SELECT count(*)::int FROM alert_rules) AS rules, (SELECT count(*)::int FROM agents) AS agents,
         (SELECT count(*)::int FROM system_metrics) + (SELECT count(*)::int FROM disk_metrics) AS rows`;
const series = (counts?.rules ?? 0) * AGENTS;
console.log(
  `seeded ${counts?.rules} rules, ${counts?.agents} agents, ${counts?.rows} samples in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

const config = loadConfig({
  env: {},
  overrides: { alerter: { evaluation_interval: "1s", delivery: { poll_interval: "200ms", workers: 8 } } },
}).alerter;
const mk = (loops: boolean) =>
  createAlerter({
    sql,
    log: silentLogger(),
    nats: null,
    keyring,
    config,
    evaluationLoop: loops,
    deliveryLoop: loops,
  });

// 1. evaluation cost
const bench = mk(false);
const first = await bench.evaluateOnce();
if (!first) throw new Error("the benchmark alerter did not become leader");
console.log(
  `first cycle: ${first.totalMs.toFixed(0)} ms (query+evaluate ${first.evalMs.toFixed(0)} ms), ${first.series} active series, ${first.upserts} instances written, ${first.notifications} notifications queued`,
);
const steady: number[] = [];
const evalOnly: number[] = [];
for (let i = 0; i < CYCLES; i++) {
  const r = await bench.evaluateOnce();
  if (r) {
    steady.push(r.totalMs);
    evalOnly.push(r.evalMs);
  }
}
await bench.stop();
const q = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? Number.NaN;
console.log(
  `steady cycles (${CYCLES}): median ${q(steady, 0.5).toFixed(0)} ms, max ${Math.max(...steady).toFixed(0)} ms; query+evaluate median ${q(evalOnly, 0.5).toFixed(0)} ms`,
);

// 2. latency with the load running every second
const latTenant = tenantIds[0]!;
const [lc] = await sql<
  { id: string }[]
>`SELECT id::text FROM notification_channels WHERE tenant_id = ${latTenant}`;
const [lr] = await sql<{ id: string }[]>`INSERT INTO alert_rules (tenant_id, name, severity, type, conditions)
  VALUES (${latTenant}, 'latency', 'critical', 'threshold',
          ${sql.json({ scope: { tags: ["lat"] }, conditions: [{ metric: "system.cpu_usage", aggregation: "last", window: "10s", threshold: 99 }] } as never)})
  RETURNING id::text`;
await sql`INSERT INTO alert_rule_channels (tenant_id, rule_id, channel_id) VALUES (${latTenant}, ${lr!.id}, ${lc!.id})`;
const latAgents = await sql<{ id: string; name: string }[]>`
  INSERT INTO agents (tenant_id, name, status, tags, created_at)
  SELECT ${latTenant}, 'lat-' || g, 'online', '{lat}', now() - interval '1 day' FROM generate_series(1, ${SAMPLES}) g
  RETURNING id::text, name`;
const live = mk(true);
await live.start();
await Bun.sleep(2000);
const latencies: number[] = [];
for (const a of latAgents) {
  await sql`INSERT INTO system_metrics (time, tenant_id, agent_id, cpu_usage) VALUES (now(), ${latTenant}, ${a.id}, 100)`;
  const committed = performance.now();
  const deadline = committed + 30_000;
  while (!received.has(a.name) && performance.now() < deadline) await Bun.sleep(10);
  const at = received.get(a.name);
  latencies.push(at === undefined ? Number.POSITIVE_INFINITY : (at - committed) / 1000);
  await Bun.sleep(Math.random() * 1000); // land anywhere in the evaluation interval
}
await live.stop();
hook.stop(true);
console.log(
  `latency row committed → webhook received (${SAMPLES} samples, 1 s interval, load running): p50 ${q(latencies, 0.5).toFixed(2)} s, p99 ${q(latencies, 0.99).toFixed(2)} s, max ${Math.max(...latencies).toFixed(2)} s`,
);

// 3. end to end: gateway ack → webhook, through a whole collector evaluating the same load
const e2e = await measureGatewayAckToWebhook({
  databaseUrl: url,
  sql,
  encryptionKey: key,
  keyring,
  samples: E2E_SAMPLES,
});
const e2eLat = e2e.latencies;
console.log(
  `latency gateway ack → webhook received (${E2E_SAMPLES} rounds, 1 s interval, load running): p50 ${q(e2eLat, 0.5).toFixed(2)} s, p99 ${q(e2eLat, 0.99).toFixed(2)} s, max ${Math.max(...e2eLat).toFixed(2)} s; batch send → ack p50 ${(q(e2e.ackDelays, 0.5) * 1000).toFixed(0)} ms`,
);
await sql.end({ timeout: 2 });
await stopTestCluster();
removeTempDirs();

result({
  rules: counts?.rules ?? 0,
  series,
  eval_s: (q(steady, 0.5) / 1000).toFixed(3),
  eval_max_s: (Math.max(...steady) / 1000).toFixed(3),
  first_cycle_s: (first.totalMs / 1000).toFixed(3),
  latency_p50_s: q(latencies, 0.5).toFixed(2),
  latency_p99_s: q(latencies, 0.99).toFixed(2),
  latency_from: "postgres_commit",
  e2e_latency_p50_s: q(e2eLat, 0.5).toFixed(2),
  e2e_latency_p99_s: q(e2eLat, 0.99).toFixed(2),
  e2e_latency_max_s: Math.max(...e2eLat).toFixed(2),
  e2e_latency_from: "gateway_ack",
  e2e_samples: E2E_SAMPLES,
  load_avg_1: loadavg()[0]!.toFixed(2),
});
