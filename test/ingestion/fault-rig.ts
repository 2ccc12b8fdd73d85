/**
 * The fault-injection rig for "nothing lost, nothing doubled": real processes throughout.
 *   - its own PostgreSQL cluster (so it can be stopped without disturbing other suites) and nats-server;
 *   - the gateway in this process; simulated agents (src/simulator's SimAgent) driven here so production can
 *     pause while pending batches are still resent until acknowledged;
 *   - ingestion workers as child processes (`bun src/main.ts serve --roles ingestion`), so they can be
 *     killed with SIGKILL.
 * The invariant checked: rows in the database == samples the gateway acknowledged to the agents, exactly.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import type { Subprocess } from "bun";
import { embeddedMigrations } from "../../src/assets/embedded.gen.ts";
import { connectNats } from "../../src/bus/connect.ts";
import { ensureTelemetryStream, telemetryStreams } from "../../src/bus/telemetry.ts";
import { loadConfig } from "../../src/config/load.ts";
import { createGateway, type GatewayService } from "../../src/gateway/index.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { Registry } from "../../src/observability/metrics.ts";
import { generateEnrollmentToken } from "../../src/pki/tokens.ts";
import { createKeyring } from "../../src/security/keyring.ts";
import type { AgentStats } from "../../src/simulator/agent.ts";
import { newAgentStats, SimAgent } from "../../src/simulator/agent.ts";
import { enroll } from "../../src/simulator/client.ts";
import { simHost } from "../../src/simulator/data.ts";
import { connect as connectDb, type Sql, withAdmin } from "../../src/storage/db.ts";
import { runMigrations } from "../../src/storage/migrate.ts";
import type { SupervisedChild } from "../../src/supervisor/child.ts";
import { freePort } from "../../src/supervisor/ports.ts";
import { prepareEmbeddedPg } from "../../src/supervisor/postgres.ts";
import { waitFor } from "../support/collector.ts";
import { type PrivateNats, privateNats } from "../support/nats.ts";
import { tempDir } from "../support/tmp.ts";
import { metricRows } from "./harness.ts";

const ROOT = join(import.meta.dir, "../..");
const VERBOSE = Boolean(process.env.SECUMON_TEST_VERBOSE);

export interface Rig {
  sql: Sql;
  pg: SupervisedChild;
  dbUrl: string;
  nats: PrivateNats;
  gateway: GatewayService;
  tenant: string;
  stats: AgentStats;
  agents: SimAgent[];
  workers: Subprocess[];
  /** Starts an ingestion worker process and resolves once it reports ready (it fails if the process exits first). */
  startWorker(): Promise<Subprocess>;
  produce(on: boolean): void;
  pending(): number;
  rows(): Promise<number>;
  /** TELEMETRY streams (the collector's default nats.telemetry_shards). */
  shards: number;
  /** What the TELEMETRY streams (every shard) hold. */
  streamBytes(): Promise<{ bytes: number; messages: number }>;
  /** Lowers every shard's max_bytes to what it holds + `headroom`: the streams are full soon after. */
  fillStreams(headroom: number): Promise<void>;
  /** The operator's fix: the configured limits again (ensureTelemetryStream, as the collector applies them). */
  restoreStreamLimits(): Promise<void>;
  close(): Promise<void>;
}

export interface RigOptions {
  agents: number;
  /** batches per second, all agents together */
  rate: number;
  samplesPerBatch: number;
  streamMaxBytes: number;
}

export async function startRig(o: RigOptions): Promise<Rig> {
  const pgDir = tempDir("secumon-fault-pg-");
  const pgPort = freePort();
  const pgPrep = await prepareEmbeddedPg(
    { dataDir: pgDir, port: pgPort, database: "postgres" },
    { initialMs: 100, maxMs: 500, resetAfterMs: 60_000 },
    silentLogger(),
  );
  await pgPrep.child.start();
  const sql = connectDb(pgPrep.url, { max: 4, log: silentLogger() });
  await runMigrations(sql, embeddedMigrations, silentLogger());
  const nats = await privateNats({ maxStoreBytes: o.streamMaxBytes + 512 * 1024 * 1024 });
  const nc = await connectNats(nats.url, "fault-rig", silentLogger());
  // the default number of shards, as the collector's own processes create them
  const limits = {
    maxAgeMs: 3_600_000,
    maxBytes: o.streamMaxBytes,
    shards: loadConfig({ env: {} }).nats.telemetry_shards,
  };
  await ensureTelemetryStream(await jetstreamManager(nc), limits);

  const dataDir = tempDir("secumon-fault-gw-");
  const config = loadConfig({
    env: {},
    overrides: {
      data_dir: dataDir,
      gateway: { grpc_port: 0, rate_limiting: { enabled: false } },
      nats: { url: nats.url, max_store_bytes: o.streamMaxBytes, stream_max_age: "1h" },
    },
  });
  const gateway = createGateway({
    config,
    log: silentLogger(),
    metrics: new Registry(),
    sql,
    nats: nc,
    keyring: createKeyring(randomBytes(32)),
  });
  await gateway.start();

  const [t] = await withAdmin(
    sql,
    (tx) => tx<{ id: string }[]>`insert into tenants (name, slug) values ('fault', 'fault') returning id`,
  );
  const tenant = t!.id;
  const { token, hash } = generateEnrollmentToken();
  await withAdmin(
    sql,
    (
      tx,
    ) => tx`insert into enrollment_tokens (tenant_id, label, principal_kind, token_hash, expires_at, max_uses)
      values (${tenant}, 'fault', 'agent', ${hash}, ${new Date(Date.now() + 3_600_000)}, ${o.agents})`,
  );
  const address = `localhost:${gateway.port}`;
  const stats: AgentStats = newAgentStats();
  const agents: SimAgent[] = [];
  for (let i = 0; i < o.agents; i++) {
    const identity = await enroll({
      address,
      caPem: gateway.caPem,
      token,
      kind: "agent",
      name: `fault-${i}`,
    });
    agents.push(
      new SimAgent({
        identity,
        address,
        host: simHost(i),
        kinds: ["metrics"],
        samplesPerBatch: o.samplesPerBatch,
        compression: "lz4",
        maxPending: 100_000,
        stats,
      }),
    );
  }

  let producing = false;
  let credit = 0;
  let cursor = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    if (producing) {
      credit += (o.rate * 20) / 1000;
      while (credit >= 1) {
        agents[cursor++ % agents.length]?.produce();
        credit -= 1;
      }
    }
    if (++ticks % 10 === 0) for (const a of agents) a.tick();
  }, 20);

  const workers: Subprocess[] = [];
  const workerEnv = {
    ...process.env,
    SECUMON_DATABASE__URL: pgPrep.url,
    SECUMON_NATS__URL: nats.url,
    SECUMON_NATS__MAX_STORE_BYTES: String(o.streamMaxBytes),
    SECUMON_NATS__STREAM_MAX_AGE: "1h",
    SECUMON_API__PORT: "0",
    SECUMON_INGESTION__ACK_WAIT: "3s",
    SECUMON_LOGGING__LEVEL: "info", // the rig reads the worker's "ready" line
  };
  const rig: Rig = {
    sql,
    pg: pgPrep.child,
    dbUrl: pgPrep.url,
    nats,
    gateway,
    tenant,
    stats,
    agents,
    workers,
    async startWorker() {
      const p = Bun.spawn(
        [
          process.execPath,
          "src/main.ts",
          "serve",
          "--roles",
          "ingestion",
          "--data-dir",
          tempDir("secumon-fault-w-"),
        ],
        {
          cwd: ROOT,
          env: workerEnv,
          stdout: "pipe",
          // SECUMON_TEST_VERBOSE=1 shows the workers' own logs
          stderr: VERBOSE ? "inherit" : "ignore",
        },
      );
      workers.push(p);
      // A worker started while a fault is injected may find NATS or PostgreSQL down and exit, as it should (its
      // supervisor restarts it); the scenario injects the next fault only once the workers it started are ready.
      let ready = false;
      const readyLine = (async () => {
        const decoder = new TextDecoder();
        let buf = "";
        for await (const chunk of p.stdout) {
          const text = decoder.decode(chunk, { stream: true });
          if (VERBOSE) process.stdout.write(text);
          if (ready) continue;
          buf = (buf + text).slice(-4096);
          if (buf.includes('"msg":"SecuMon Collector ready on')) ready = true;
        }
      })();
      await waitFor(
        async () => ready || p.exitCode !== null,
        90_000, // worker processes start slowly on a loaded machine
        "an ingestion worker to be ready",
      );
      if (!ready) {
        await readyLine;
        throw new Error(`an ingestion worker exited with code ${p.exitCode} before it was ready`);
      }
      return p;
    },
    produce(on) {
      producing = on;
    },
    pending: () => agents.reduce((n, a) => n + a.pendingCount, 0),
    rows: () => metricRows(sql, tenant),
    shards: limits.shards,
    async streamBytes() {
      const jsm = await jetstreamManager(nc);
      const held = { bytes: 0, messages: 0 };
      for (const name of telemetryStreams(limits.shards)) {
        const { state } = await jsm.streams.info(name);
        held.bytes += state.bytes;
        held.messages += state.messages;
      }
      return held;
    },
    async fillStreams(headroom) {
      const jsm = await jetstreamManager(nc);
      for (const name of telemetryStreams(limits.shards)) {
        const info = await jsm.streams.info(name);
        await jsm.streams.update(name, { ...info.config, max_bytes: info.state.bytes + headroom });
      }
    },
    restoreStreamLimits: async () => ensureTelemetryStream(await jetstreamManager(nc), limits),
    async close() {
      clearInterval(timer);
      for (const a of agents) a.stop();
      for (const w of workers) w.kill("SIGTERM");
      await Promise.all(workers.map((w) => w.exited));
      await gateway.stop().catch(() => {});
      await nc.close().catch(() => {});
      await nats.child.stop();
      await sql.end({ timeout: 2 }).catch(() => {});
      await pgPrep.child.stop();
    },
  };
  return rig;
}
