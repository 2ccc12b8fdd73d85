/**
 * make bench-ingest: end-to-end telemetry ingest against the raw limit of this machine, in one run.
 *   1. raw COPY into the empty partition: the simulator's metrics rows, decoded and COPYed straight into
 *      system_metrics (1 and 2 parallel connections; the better one is kept);
 *   2. saturation: simulated agents (in this process) → gateway + ingestion (one collector child process,
 *      `serve --roles gateway,ingestion`) → JetStream (nats-server child) → PostgreSQL; rows/s written while the
 *      producers run flat out (secumon_ingest_rows_written_total; they pause while more than BENCH_BACKLOG rows
 *      wait in the stream), as long as the lag phase lasts (by default),
 *      so that the slow-down of a growing partition is inside the figure; the rate of every minute is printed;
 *      then the drain rate of the backlog;
 *   3. raw COPY again, into the same partition now holding what phase 2 wrote (same table, same indexes,
 *      comparable size). The reference for the ratio is the mean of 1 and 3: phase 2 wrote while the partition
 *      grew from empty to that size;
 *   4. lag: the same pipeline at 80 % of the sustained rate of phase 2; p99 of secumon_ingest_lag_seconds
 *      (gateway receive → commit), interpolated inside its histogram bucket; the rate reached is printed, and
 *      RSS of the ingestion process sampled every 5 s (drift = mean of the last tenth of the samples vs the
 *      mean of the first tenth).
 * Prints the CPU % of a core each process used during phase 2 and ends with the RESULT line.
 * Knobs (env): BENCH_SATURATE_S (default BENCH_LAG_S), BENCH_LAG_S (default 120), BENCH_AGENTS (16),
 * BENCH_SAMPLES (1000 per batch), BENCH_RAW_ROWS (300000, COPYed in the binary format the pipeline uses), BENCH_BACKLOG (1000000 rows), BENCH_SPLIT=1 (gateway and ingestion in two processes),
 * BENCH_GROUP / BENCH_CONCURRENCY (ingestion.batch_size / concurrency, default 20 / 3), BENCH_PROFILE=DIR (with
 * BENCH_SPLIT=1: CPU profile of the ingestion process, markdown, written into DIR when it stops).
 */
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { executable } from "../src/assets/binaries.ts";
import { embeddedMigrations } from "../src/assets/embedded.gen.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { generateEnrollmentToken } from "../src/pki/tokens.ts";
import { decodePayload } from "../src/protocol/index.ts";
import type { AgentStats } from "../src/simulator/agent.ts";
import { newAgentStats, SimAgent } from "../src/simulator/agent.ts";
import { enroll } from "../src/simulator/client.ts";
import { makePayload, simHost } from "../src/simulator/data.ts";
import { connect, withAdmin } from "../src/storage/db.ts";
import { runMigrations } from "../src/storage/migrate.ts";
import { natsChild, natsUrl } from "../src/supervisor/nats.ts";
import { freePort } from "../src/supervisor/ports.ts";
import { prepareEmbeddedPg } from "../src/supervisor/postgres.ts";
import { copyBinary } from "../src/telemetry/copy.ts";
import { COLUMNS, metricsRows } from "../src/telemetry/rows.ts";
import { RejectTally } from "../src/telemetry/validate.ts";
import { printMachine, result } from "./machine.ts";
import { pgCpu, pgWindow } from "./pg-probe.ts";

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const LAG_S = env("BENCH_LAG_S", 120);
const SATURATE_S = env("BENCH_SATURATE_S", LAG_S);
const AGENTS = env("BENCH_AGENTS", 16);
const SAMPLES = env("BENCH_SAMPLES", 1000);
const RAW_ROWS = env("BENCH_RAW_ROWS", 300_000);
const BACKLOG = env("BENCH_BACKLOG", 1_000_000);
const ROOT = join(import.meta.dir, "..");
const tmpDirs: string[] = [];
const tmp = (p: string) => {
  const d = `${tmpdir()}/${p}${crypto.randomUUID().slice(0, 8)}`;
  mkdirSync(d, { recursive: true, mode: 0o755 });
  tmpDirs.push(d);
  return d;
};

printMachine();
console.log(
  `load average at start: ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`,
);

// --- PostgreSQL and NATS, as children of this process --------------------------------------------------------
const pg = await prepareEmbeddedPg(
  { dataDir: tmp("secumon-bench-pg-"), port: freePort(), database: "postgres" },
  { initialMs: 200, maxMs: 2000, resetAfterMs: 60_000 },
  silentLogger(),
);
await pg.child.start();
const sql = connect(pg.url, { max: 4, log: silentLogger() });
await runMigrations(sql, embeddedMigrations, silentLogger());
const natsDir = tmp("secumon-bench-nats-");
const natsPort = freePort();
const nats = natsChild(
  {
    binary: await executable("nats-server", natsDir),
    dataDir: natsDir,
    host: "127.0.0.1",
    port: natsPort,
    syncInterval: "always",
    maxStoreBytes: 12 * 2 ** 30,
  },
  { initialMs: 200, maxMs: 2000, resetAfterMs: 60_000 },
  silentLogger(),
);
await nats.start();

// --- 1. raw COPY baseline --------------------------------------------------------------------------------------
const host = simHost(0);
const tenant = crypto.randomUUID();
const agent = crypto.randomUUID();
// the rows in the encoding the pipeline COPYs them in (binary for metrics, src/telemetry/copy.ts): one chunk
// per payload (its system rows)
const chunks: { bytes: Uint8Array; rows: number }[] = [];
let rawRows = 0;
const window = { minMs: 0, maxMs: Date.now() + 3_600_000 };
while (rawRows < RAW_ROWS) {
  const { bytes } = makePayload("metrics", host, SAMPLES);
  const rows = metricsRows(
    decodePayload("metrics", bytes),
    { tenantId: tenant, sourceId: agent },
    window,
    new RejectTally(),
  ).binary.get("system_metrics");
  if (!rows) throw new Error("the simulator's metrics payload holds no system rows");
  chunks.push({ bytes: rows.bytes(), rows: rows.rows });
  rawRows += rows.rows;
}
await sql`select secumon_ensure_partitions('system_metrics', now() - interval '1 day', now() + interval '1 day')`;
async function rawCopy(parallel: number, empty = true): Promise<number> {
  if (empty) await sql`truncate system_metrics`;
  const per = Math.ceil(chunks.length / parallel);
  const probe = await pgWindow(sql, pg.child.pid ?? 0, false);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async (_, p) => {
      const mine = chunks.slice(p * per, (p + 1) * per);
      // about 10,000 rows per transaction
      for (let i = 0; i < mine.length; ) {
        const txn: Uint8Array[] = [];
        for (let n = 0; i < mine.length && n < 10_000; i++) {
          txn.push(mine[i]!.bytes);
          n += mine[i]!.rows;
        }
        await withAdmin(sql, (tx) => copyBinary(tx, "system_metrics", COLUMNS.system_metrics, txn));
      }
    }),
  );
  const rate = rawRows / ((performance.now() - t0) / 1000);
  console.log(`raw COPY, ${parallel} connection(s), ${empty ? "empty" : "full"} partition:`);
  for (const l of await probe.end(rawRows)) console.log(l);
  return rate;
}
const raw1 = await rawCopy(1);
const raw2 = await rawCopy(2);
const rawEmpty = Math.max(raw1, raw2);
const rawParallel = raw2 > raw1 ? 2 : 1;
console.log(
  `raw COPY into the empty system_metrics partition: ${Math.round(raw1)} rows/s (1 connection), ${Math.round(raw2)} rows/s (2)`,
);
await sql`truncate system_metrics`;

// --- the collector: gateway + ingestion -------------------------------------------------------------------------
const apiPort = freePort();
const grpcPort = freePort();
const SPLIT = process.env.BENCH_SPLIT === "1";
// BENCH_PROFILE=DIR: the ingestion process writes a CPU profile (markdown) into DIR when it exits
const PROFILE = process.env.BENCH_PROFILE ?? "";
function spawnCollector(roles: string, port: number): Subprocess {
  const prof = PROFILE && roles === "ingestion" ? ["--cpu-prof-md", `--cpu-prof-dir=${PROFILE}`] : [];
  return Bun.spawn(
    ["bun", ...prof, "src/main.ts", "serve", "--roles", roles, "--data-dir", tmp("secumon-bench-c-")],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        SECUMON_DATABASE__URL: pg.url,
        SECUMON_NATS__URL: natsUrl({ host: "127.0.0.1", port: natsPort }),
        SECUMON_API__PORT: String(port),
        SECUMON_GATEWAY__GRPC_PORT: String(grpcPort),
        SECUMON_GATEWAY__RATE_LIMITING__ENABLED: "false",
        SECUMON_INGESTION__BATCH_SIZE: process.env.BENCH_GROUP ?? "20",
        SECUMON_INGESTION__CONCURRENCY: process.env.BENCH_CONCURRENCY ?? "3",
        SECUMON_LOGGING__LEVEL: "warn",
      },
      stdout: "inherit",
      stderr: "inherit",
    },
  );
}
async function ready(proc: Subprocess, port: number): Promise<void> {
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    if (i > 600 || proc.exitCode !== null) throw new Error("the collector did not become ready");
    await Bun.sleep(100);
  }
}
// BENCH_SPLIT=1: gateway and ingestion in two processes (two event loops), as a role-split deployment runs them
const collector = spawnCollector(SPLIT ? "ingestion" : "gateway,ingestion", apiPort);
await ready(collector, apiPort);
const gatewayPort = SPLIT ? freePort() : 0;
const gatewayProc = SPLIT ? spawnCollector("gateway", gatewayPort) : null;
if (gatewayProc) await ready(gatewayProc, gatewayPort);
const base = `http://127.0.0.1:${apiPort}`;
console.log(
  SPLIT
    ? "topology: gateway and ingestion in two processes"
    : "topology: gateway and ingestion in one process",
);
const [ca] = await sql<{ cert_pem: string }[]>`select cert_pem from gateway_ca`;
const [t] = await withAdmin(
  sql,
  (tx) => tx<{ id: string }[]>`insert into tenants (name, slug) values ('bench', 'bench') returning id`,
);
const { token, hash } = generateEnrollmentToken();
await withAdmin(
  sql,
  (tx) => tx`insert into enrollment_tokens (tenant_id, label, token_hash, expires_at, max_uses)
    values (${t!.id}, 'bench', ${hash}, now() + interval '1 day', ${AGENTS})`,
);
const address = `localhost:${grpcPort}`;
const stats: AgentStats = newAgentStats();
const agents: SimAgent[] = [];
for (let i = 0; i < AGENTS; i++) {
  const identity = await enroll({ address, caPem: ca!.cert_pem, token, kind: "agent", name: `bench-${i}` });
  agents.push(
    new SimAgent({
      identity,
      address,
      host: simHost(i),
      kinds: ["metrics"],
      samplesPerBatch: SAMPLES,
      compression: "lz4",
      maxPending: 8,
      stats,
    }),
  );
}

// batches per second (all agents); Infinity = as fast as the pending window allows
let rate = Number.POSITIVE_INFINITY;
let credit = 0;
let cursor = 0;
let ticks = 0;
// Flat out, but with a bounded backlog: the producers pause while the stream holds more than BACKLOG rows not yet
// written, so "saturated" measures the write path (the stream never grows into gigabytes that only a long drain
// would empty, and whose disk traffic would slow the writers down).
let written = 0;
const backlogTimer = setInterval(() => {
  scrape().then(
    (t) => {
      written = rowsWritten(t);
    },
    () => {},
  );
}, 500);
const driver = setInterval(() => {
  if (rate === Number.POSITIVE_INFINITY) {
    if ((stats.ackedSamples.metrics ?? 0) - written < BACKLOG) for (const a of agents) a.produce();
  } else {
    credit += (rate * 20) / 1000;
    while (credit >= 1) {
      agents[cursor++ % agents.length]?.produce();
      credit -= 1;
    }
  }
  if (++ticks % 10 === 0) for (const a of agents) a.tick();
}, 20);

async function scrape(): Promise<string> {
  return (await fetch(`${base}/metrics`)).text();
}
function sumMetric(text: string, prefix: string): number {
  let n = 0;
  for (const l of text.split("\n")) if (l.startsWith(prefix)) n += Number(l.slice(l.lastIndexOf(" ") + 1));
  return n;
}
const rowsWritten = (text: string) => sumMetric(text, "secumon_ingest_rows_written_total{table=");

// CPU seconds per process: utime + stime from /proc (clock ticks of 10 ms)
function cpuOf(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}
function cpuSplit(): Record<string, number> {
  const pgPid = pg.child.pid ?? 0;
  return {
    bench_simulator: cpuOf(process.pid),
    collector: cpuOf(collector.pid),
    ...(gatewayProc ? { gateway: cpuOf(gatewayProc.pid) } : {}),
    nats: cpuOf(nats.pid ?? 0),
    postgres: Object.values(pgCpu(pgPid)).reduce((a, b) => a + b, 0),
  };
}
const rss = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;

// --- 2. saturation --------------------------------------------------------------------------------------------
// The producers run flat out; the sustained end-to-end rate is what the workers write while the gateway is as
// busy as they are (the gateway is cheaper per row, so the stream buffers the difference). Then the producers
// stop and the backlog drains: the drain rate (workers alone) is printed too.
const acked = () => stats.ackedSamples.metrics ?? 0;
await Bun.sleep(10_000); // warm-up: the pipeline is saturated from here on
const cpu0 = cpuSplit();
const pgBusy = await pgWindow(sql, pg.child.pid ?? 0);
const w0 = rowsWritten(await scrape());
const t0 = performance.now();
const perMinute: number[] = [];
for (let left = SATURATE_S, prev = w0; left > 0; left -= 60) {
  await Bun.sleep(Math.min(60, left) * 1000);
  const w = rowsWritten(await scrape());
  perMinute.push(Math.round((w - prev) / Math.min(60, left)));
  prev = w;
}
console.log(`saturation, rows/s written per minute: ${perMinute.join(" ")}`);
const wBusy = rowsWritten(await scrape());
const tBusy = performance.now();
const cpu1 = cpuSplit();
const pgBusyLines = await pgBusy.end(wBusy - w0);
const e2e = (wBusy - w0) / ((tBusy - t0) / 1000);
rate = 0;
await Bun.sleep(1000); // in-flight acknowledgements
const target = acked();
for (;;) {
  if (rowsWritten(await scrape()) >= target) break;
  await Bun.sleep(100);
}
const drain = (rowsWritten(await scrape()) - wBusy) / ((performance.now() - tBusy) / 1000);
const busyS = (tBusy - t0) / 1000;
const split = Object.fromEntries(
  Object.entries(cpu1).map(([k, v]) => [k, Math.round(((v - (cpu0[k] ?? 0)) / busyS) * 100)]),
);
console.log(
  `sustained end-to-end: ${Math.round(e2e)} rows/s over ${busyS.toFixed(0)} s with producers flat out ` +
    `(gateway acknowledged ${Math.round((target - w0) / busyS)} rows/s in that time); then the backlog drained at ` +
    `${Math.round(drain)} rows/s. CPU % of one core per process while busy: ${JSON.stringify(split)}`,
);
for (const l of pgBusyLines) console.log(l);

// --- 3. raw COPY at a comparable partition size ----------------------------------------------------------------
const [sz] = await sql<{ size: string }[]>`
  select pg_size_pretty(pg_total_relation_size(
    'system_metrics_p' || to_char(now() at time zone 'UTC', 'YYYYMMDD'))) as size`;
const systemRows = sumMetric(await scrape(), 'secumon_ingest_rows_written_total{table="system_metrics"}');
const rawFull = await rawCopy(rawParallel, false);
const raw = (rawEmpty + rawFull) / 2;
console.log(
  `raw COPY into the same partition holding ${systemRows} rows (${sz?.size} with indexes): ${Math.round(rawFull)} rows/s ` +
    `(${rawParallel} connection${rawParallel > 1 ? "s" : ""}); reference for the ratio = mean of empty and full: ${Math.round(raw)} rows/s`,
);

// --- 4. lag at 80 % and memory ---------------------------------------------------------------------------------
rate = (0.8 * e2e) / SAMPLES;
await Bun.sleep(10_000); // settle at the new rate
const h0 = await scrape();
const pgLag = await pgWindow(sql, pg.child.pid ?? 0);
const rssSamples: number[] = [];
const sampler = setInterval(() => rssSamples.push(rss(collector.pid)), 5000);
await Bun.sleep(LAG_S * 1000);
clearInterval(sampler);
const h1 = await scrape();
const pgLagLines = await pgLag.end(rowsWritten(h1) - rowsWritten(h0));
function lagP99(a: string, b: string): number {
  const buckets: [number, number][] = [];
  for (const l of b.split("\n")) {
    const m = /^secumon_ingest_lag_seconds_bucket\{kind="metrics",le="([^"]+)"\} (\S+)$/.exec(l);
    if (!m) continue;
    const before = new RegExp(
      `^secumon_ingest_lag_seconds_bucket\\{kind="metrics",le="${m[1]!.replace("+", "\\+")}"\\} (\\S+)$`,
      "m",
    ).exec(a);
    buckets.push([
      m[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[1]),
      Number(m[2]) - Number(before?.[1] ?? 0),
    ]);
  }
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return Number.NaN;
  const want = total * 0.99;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, c] of buckets) {
    if (c >= want) {
      if (!Number.isFinite(le)) return prevLe;
      return prevLe + ((want - prevCount) / Math.max(1, c - prevCount)) * (le - prevLe);
    }
    prevLe = le;
    prevCount = c;
  }
  return prevLe;
}
const lag = lagP99(h0, h1);
const tenth = Math.max(1, Math.floor(rssSamples.length / 10));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const drift =
  rssSamples.length >= 2
    ? ((mean(rssSamples.slice(-tenth)) - mean(rssSamples.slice(0, tenth))) /
        mean(rssSamples.slice(0, tenth))) *
      100
    : Number.NaN;
const lagRows = (rowsWritten(h1) - rowsWritten(h0)) / LAG_S;
console.log(
  `at 80 % (asked ${Math.round(0.8 * e2e)} rows/s): ${Math.round(lagRows)} rows/s, lag p99 ${lag.toFixed(2)} s, ingestion process RSS ${Math.round(rssSamples[0] ?? 0)} → ${Math.round(rssSamples.at(-1) ?? 0)} MiB (min ${Math.round(Math.min(...rssSamples))}, max ${Math.round(Math.max(...rssSamples))}, ${rssSamples.length} samples)`,
);
for (const l of pgLagLines) console.log(l);
console.log(`simulator: ${JSON.stringify(stats)}`);

clearInterval(driver);
clearInterval(backlogTimer);
for (const a of agents) a.stop();
collector.kill("SIGTERM");
gatewayProc?.kill("SIGTERM");
await collector.exited;
await gatewayProc?.exited;
await nats.stop();
await sql.end({ timeout: 2 });
await pg.child.stop();
for (const d of tmpDirs) rmSync(d, { recursive: true, force: true }); // the cluster alone holds gigabytes
// system_metrics values per row: cpu_usage, cpu_user, cpu_system, cpu_iowait, load_avg_1/5/15, mem_total, mem_used,
// mem_available, mem_cached, swap_used (the simulator's disk and network rows carry 10 and 6; counted as 12 here
// only approximately: 80 % of its rows are system rows)
const valuesPerRow = 0.8 * 12 + 0.1 * 10 + 0.1 * 6;
result({
  raw_copy_rows_per_s: Math.round(raw),
  raw_empty_rows_per_s: Math.round(rawEmpty),
  raw_full_rows_per_s: Math.round(rawFull),
  e2e_rows_per_s: Math.round(e2e),
  ratio: (e2e / raw).toFixed(2),
  values_per_s: Math.round(e2e * valuesPerRow),
  lag_rows_per_s: Math.round(lagRows),
  lag_p99_s: lag.toFixed(2),
  rss_drift_pct: drift.toFixed(1),
  load1: readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "",
});
process.exit(0);
