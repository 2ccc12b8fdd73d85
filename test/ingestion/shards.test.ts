/**
 * `nats.telemetry_shards` end to end in one collector: the gateway spreads agents over TELEMETRY and
 * TELEMETRY_1, the ingestion role consumes both, and the rows equal, exactly, the samples the gateway
 * acknowledged.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { jetstreamManager } from "@nats-io/jetstream";
import type { Collector } from "../../src/app/collector.ts";
import { connectNats } from "../../src/bus/connect.ts";
import { ingestConsumerName, telemetryShard, telemetryStreams } from "../../src/bus/telemetry.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { newAgentStats, SimAgent } from "../../src/simulator/agent.ts";
import { enroll } from "../../src/simulator/client.ts";
import { simHost } from "../../src/simulator/data.ts";
import { connect, type Sql } from "../../src/storage/db.ts";
import { freePort } from "../../src/supervisor/ports.ts";
import { createTenant, createToken } from "../gateway/harness.ts";
import { startCollector, testConfig, waitFor } from "../support/collector.ts";
import { metricRows } from "./harness.ts";

const SHARDS = 2;
let c: Collector;
let sql: Sql;
let grpcPort: number;

beforeAll(async () => {
  grpcPort = freePort();
  c = await startCollector(
    testConfig({
      roles: ["gateway", "ingestion"],
      gateway: { grpc_port: grpcPort, rate_limiting: { enabled: false } },
      nats: { port: freePort(), telemetry_shards: SHARDS },
    }),
  );
  sql = connect(c.databaseUrl, { max: 2, log: silentLogger() });
}, 120_000);
afterAll(async () => {
  await sql?.end({ timeout: 5 });
  await c?.stop();
}, 60_000);

test("agents spread over two TELEMETRY shards; ingestion writes every acknowledged sample once", async () => {
  const tenant = await createTenant(sql, "shards");
  const token = await createToken(sql, tenant);
  const [ca] = await sql<{ cert_pem: string }[]>`select cert_pem from gateway_ca where id = 1`;
  const address = `localhost:${grpcPort}`;
  const stats = newAgentStats();
  const agents: SimAgent[] = [];
  const shardsSeen = new Set<number>();
  // enroll until both shards have an agent (source ids are random; 2^-31 odds of needing more than 32)
  for (let i = 0; i < 32 && (agents.length < 4 || shardsSeen.size < SHARDS); i++) {
    const identity = await enroll({ address, caPem: ca!.cert_pem, token, kind: "agent", name: `shard-${i}` });
    shardsSeen.add(telemetryShard(identity.id, SHARDS));
    agents.push(
      new SimAgent({
        identity,
        address,
        host: simHost(i),
        kinds: ["metrics"],
        samplesPerBatch: 20,
        compression: "zstd",
        maxPending: 1000,
        stats,
      }),
    );
  }
  expect(shardsSeen.size).toBe(SHARDS);

  for (let round = 0; round < 5; round++) for (const a of agents) a.produce();
  await waitFor(
    async () => {
      for (const a of agents) a.tick();
      return agents.every((a) => a.pendingCount === 0);
    },
    60_000,
    "every batch to be acknowledged",
  );
  const acked = stats.ackedSamples.metrics ?? 0;
  expect(acked).toBeGreaterThan(0);
  const rows = () => metricRows(sql, tenant);
  await waitFor(async () => (await rows()) >= acked, 60_000, "the rows of every acknowledged sample");
  await Bun.sleep(500);
  expect(await rows()).toBe(acked);

  // each shard's durable consumer delivered and acknowledged what the gateway put in its stream
  const nc = await connectNats(c.natsUrl, "shards-test", silentLogger());
  try {
    const jsm = await jetstreamManager(nc);
    for (const stream of telemetryStreams(SHARDS)) {
      const info = await jsm.consumers.info(stream, ingestConsumerName("metrics"));
      expect(info.delivered.stream_seq).toBeGreaterThan(0);
      expect(info.num_ack_pending).toBe(0);
      expect(info.num_pending).toBe(0);
    }
  } finally {
    await nc.close();
    for (const a of agents) a.stop();
  }
}, 120_000);
