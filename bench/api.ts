/**
 * make bench-api: API latency under load (issue #6).
 *   Data: AGENTS (200) agents × DAYS (30) days of 1-minute system_metrics generated in SQL, then the 5-minute
 *   and hourly rollups refreshed with secumon_refresh_rollup (the maintenance job's function) and
 *   rollup_progress set, as the job would leave them, then VACUUM ANALYZE. BENCH_DATABASE_URL: reuse a database
 *   an earlier run filled (its `bench` tenant) instead of generating 8.6 M rows again. Before measuring, waits
 *   until no autovacuum worker has run for 5 s and checkpoints.
 *   Load tool: wrk (default when installed; the Makefile installs it), one thread, CLIENTS (20) keep-alive
 *   connections in a closed loop, DURATION (10) s per phase after a 3 s warm-up with every connection; the
 *   API serves from this process, so the load generator does not share its JavaScript thread. LOAD=fetch:
 *   a Bun fetch loop in this process instead (it competes with the server for its one thread).
 *   Figures: p50/p99 and requests/s of a 24-hour chart, a DAYS-day chart, GET /agents and sign-in, and what
 *   one argon2id hash costs; for each phase, where the CPU went (this process = the API, PostgreSQL's
 *   backends, the load tool, the whole machine) from /proc. Sign-in three ways: 1 client in a closed loop; an
 *   open loop of LOGIN_RATE (10) sign-ins per second (bench/open-loop.ts, latency from the scheduled send
 *   time) — the realistic figure, `login_p99_ms`; and CLIENTS clients in a closed loop, a burst that queues
 *   behind argon2 (`login_concurrent_p99_ms`, docs/api.md). PHASES=chart24h,chart30d,list,login picks phases.
 * Goals: chart24h p99 ≤ 50 ms, chart30d p99 ≤ 150 ms, login p99 ≤ 150 ms, agents list p99 ≤ 20 ms.
 */

import { cpus, loadavg } from "node:os";
import type { Subprocess } from "bun";
import { apiPlugin } from "../src/api/app.ts";
import type { ApiDeps } from "../src/api/deps.ts";
import { memoryStore } from "../src/api/lib/store.ts";
import { READ_SLOTS } from "../src/api/lib/tx.ts";
import { createHttpApp } from "../src/app/http.ts";
import { jwtSigner } from "../src/auth/jwt.ts";
import { hashPassword, PASSWORD_PARAMS } from "../src/auth/passwords.ts";
import { loadConfig } from "../src/config/load.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { Registry } from "../src/observability/metrics.ts";
import { createKeyring } from "../src/security/keyring.ts";
import { connect } from "../src/storage/db.ts";
import { migratedDatabase, stopTestCluster } from "../test/support/pg.ts";
import { removeTempDirs, tempDir } from "../test/support/tmp.ts";
import { sample as cpuSample, delta, machineMs } from "./cpu.ts";
import { printMachine, result } from "./machine.ts";

const AGENTS = Number(process.env.AGENTS ?? 200);
const DAYS = Number(process.env.DAYS ?? 30);
const CLIENTS = Number(process.env.CLIENTS ?? 20);
const REQUESTS = Number(process.env.REQUESTS ?? 1000);
const LOGINS = Number(process.env.LOGINS ?? 200);
/** Seconds per wrk phase (login: LOGIN_SECONDS). */
const DURATION = Number(process.env.DURATION ?? 10);
const LOGIN_SECONDS = Number(process.env.LOGIN_SECONDS ?? 10);
/** Sign-ins per second of the open-loop sign-in phase (a realistic rate; the closed loop of CLIENTS is the burst). */
const LOGIN_RATE = Number(process.env.LOGIN_RATE ?? 10);
/** LOAD=wrk (default when wrk is installed; `make bench-api` installs it) or LOAD=fetch (a Bun fetch loop). */
const useWrk = (process.env.LOAD ?? (Bun.which("wrk") ? "wrk" : "fetch")) === "wrk";

interface Figures {
  n: number;
  p50: number;
  p99: number;
  rps: number;
  /** Where the CPU went (describeCpu). */
  cpu?: string;
}
interface Req {
  paths: string[];
  method?: string;
  body?: string;
  token?: string;
  seconds?: number;
}

/** Median wall time of one argon2id hash with the configured parameters, in ms. */
async function argonCost(): Promise<number> {
  const t: number[] = [];
  for (let i = 0; i < 20; i++) {
    const s = performance.now();
    await hashPassword(PASSWORD);
    t.push(performance.now() - s);
  }
  return t.sort((a, b) => a - b)[10] as number;
}
const PASSWORD = "bench password, long enough";
const DAY = 86_400_000;

/**
 * Waits until PostgreSQL is quiet before measuring: no autovacuum worker for 5 s in a row (up to 5 min), then a
 * CHECKPOINT so that the dirty pages of a fresh load are not written out during the phases.
 */
async function settle(): Promise<void> {
  const t0 = performance.now();
  let quietSince = performance.now();
  while (performance.now() - quietSince < 5000 && performance.now() - t0 < 300_000) {
    const [r] =
      await sql`select count(*)::int as n from pg_stat_activity where backend_type = 'autovacuum worker'`;
    if ((r?.n as number) > 0) quietSince = performance.now();
    await Bun.sleep(500);
  }
  await sql`checkpoint`.catch(() => {}); // needs superuser or pg_checkpoint: skipped without
  console.log(`database settled (no autovacuum for 5 s, checkpoint) after ${secs(t0)} s`);
}

/** Process ids of this database's backends serving the bench's pool (the API's connections). */
async function backends(): Promise<number[]> {
  const rows = await sql`
    select pid from pg_stat_activity where datname = current_database() and application_name = 'secumon-collector'`;
  return rows.map((r) => r.pid as number);
}

/** Where the CPU went during a phase, in % of one core and ms per request. */
interface CpuSplit {
  api: number;
  pg: number;
  load: number;
  machine: number;
}
const pct1 = (ms: number, wallMs: number) => `${((100 * ms) / wallMs).toFixed(0)}%`;
function describeCpu(c: CpuSplit, wallMs: number, n: number): string {
  const per = (ms: number) => (ms / Math.max(1, n)).toFixed(2);
  return (
    `cpu (of one core): api ${pct1(c.api, wallMs)}, postgres ${pct1(c.pg, wallMs)}, load tool ${pct1(c.load, wallMs)}, ` +
    `whole machine ${pct1(c.machine, wallMs)} of ${cpus().length * 100}%; ms per request: api ${per(c.api)}, ` +
    `postgres ${per(c.pg)}, load tool ${per(c.load)}`
  );
}

printMachine();
console.log(
  useWrk
    ? `load tool: wrk (1 thread, ${CLIENTS} keep-alive connections, ${DURATION} s per phase, closed loop), HTTP on 127.0.0.1; the API runs in this process`
    : `load tool: Bun fetch loop in the API's own process (LOAD=fetch), ${CLIENTS} concurrent clients, keep-alive, HTTP on 127.0.0.1`,
);
console.log(
  `data: ${AGENTS} agents × ${DAYS} days of 1-minute system_metrics (${(AGENTS * DAYS * 1440).toLocaleString()} rows)`,
);

const url = process.env.BENCH_DATABASE_URL || (await migratedDatabase());
const sql = connect(url, { max: Number(process.env.POOL ?? 20), log: silentLogger() });
const secs = (t0: number) => ((performance.now() - t0) / 1000).toFixed(1);

try {
  const now = Math.floor(Date.now() / 60_000) * 60_000;
  // BENCH_DATABASE_URL: a database an earlier run filled (its `bench` tenant), reused as it is
  const [existing] = process.env.BENCH_DATABASE_URL
    ? await sql`select id from tenants where slug = 'bench'`
    : [];
  let tenantId = existing?.id as string | undefined;
  let agents: string[];
  if (tenantId) {
    agents = (await sql`select id from agents where tenant_id = ${tenantId} order by name`).map(
      (r) => r.id as string,
    );
    console.log(
      `reusing the data of ${process.env.BENCH_DATABASE_URL?.replace(/\/\/[^@]*@/, "//")}: ${agents.length} agents`,
    );
  } else {
    const [tenant] = await sql`insert into tenants (name, slug) values ('Bench', 'bench') returning id`;
    tenantId = tenant?.id as string;
    await sql`insert into users (tenant_id, email, role, password_hash)
              values (${tenantId}, 'bench@bench.test', 'admin', ${await hashPassword(PASSWORD)})`;
    agents = (
      await sql`insert into agents (tenant_id, name, hostname, status, tags, created_at)
                select ${tenantId}, 'agent-' || lpad(i::text, 4, '0'), 'host-' || i, 'online',
                       array[case when i % 2 = 0 then 'web' else 'db' end], ${new Date(now - (DAYS + 1) * DAY)}
                from generate_series(1, ${AGENTS}) i returning id`
    ).map((r) => r.id as string);

    let t0 = performance.now();
    for (const t of ["system_metrics", "system_metrics_5m", "system_metrics_1h"])
      await sql`select secumon_ensure_partitions(${t}, ${new Date(now - (DAYS + 1) * DAY)}, ${new Date(now + DAY)})`;
    for (let d = DAYS; d > 0; d--) {
      const from = new Date(now - d * DAY);
      const to = new Date(now - (d - 1) * DAY);
      await sql`
        insert into system_metrics (time, tenant_id, agent_id, cpu_usage, cpu_user, cpu_system, cpu_iowait, load_avg_1,
                                    load_avg_5, load_avg_15, mem_total, mem_used, mem_available, swap_used)
        select ts, ${tenantId}, a.id,
               20 + 15 * sin(extract(epoch from ts) / 3600 + a.n) + random() * 10, 10, 5, 1, 1.5, 1.2, 1.0,
               8589934592, 4294967296 + (random() * 1073741824)::bigint, 3221225472, 0
        from generate_series(${from}::timestamptz, ${to}::timestamptz - interval '1 minute', interval '1 minute') ts,
             (select id, row_number() over () as n from agents where tenant_id = ${tenantId}) a`;
      process.stdout.write(`\rgenerating: day ${DAYS - d + 1}/${DAYS} (${secs(t0)} s)`);
    }
    console.log(`\ngenerated ${(AGENTS * DAYS * 1440).toLocaleString()} rows in ${secs(t0)} s`);

    t0 = performance.now();
    const done5 = new Date(Math.floor(now / 300_000) * 300_000);
    const done1h = new Date(Math.floor(now / 3600_000) * 3600_000);
    for (let d = DAYS; d > 0; d--) {
      const from = new Date(Math.floor((now - d * DAY) / 3600_000) * 3600_000);
      const to = new Date(Math.min(from.getTime() + DAY, done5.getTime()));
      await sql`select secumon_refresh_rollup('system_metrics_5m', ${from}, ${to})`;
      await sql`select secumon_refresh_rollup('system_metrics_1h', ${from}, ${new Date(Math.min(to.getTime(), done1h.getTime()))})`;
    }
    await sql`insert into rollup_progress (name, done_until) values ('system_metrics_5m', ${done5}), ('system_metrics_1h', ${done1h})`;
    // VACUUM, not only ANALYZE: freshly inserted partitions would otherwise be vacuumed by autovacuum (its
    // insert threshold) while the phases run, and index-only scans need the visibility map it sets
    await sql`vacuum (analyze)`;
    console.log(`rollups refreshed, vacuumed and analyzed in ${secs(t0)} s`);
  }

  await settle();

  const config = loadConfig({
    env: {},
    overrides: { api: { port: 0, rate_limiting: { enabled: false } }, logging: { level: "error" } },
  });
  const deps: ApiDeps = {
    config,
    sql,
    // as the api role opens it (open-deps.ts): its own READ_SLOTS connections for one-statement reads
    readSql: connect(url, { max: READ_SLOTS, log: silentLogger() }),
    keyring: createKeyring(crypto.getRandomValues(new Uint8Array(32))),
    log: silentLogger(),
    metrics: new Registry(),
    store: memoryStore(),
    jwt: jwtSigner(crypto.getRandomValues(new Uint8Array(32))),
    dataDir: tempDir("secumon-bench-api-"),
    now: Date.now,
  };
  const app = createHttpApp({ log: silentLogger(), metrics: deps.metrics, notReady: () => [] }).use(
    apiPlugin(deps),
  );
  app.listen({ hostname: "127.0.0.1", port: 0, reusePort: false });
  const base = `http://127.0.0.1:${app.server?.port}`;

  const loginBody = JSON.stringify({ email: "bench@bench.test", password: PASSWORD });
  const login = async () => {
    const r = await fetch(`${base}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: loginBody,
    });
    if (r.status !== 200) throw new Error(`login: ${r.status} ${await r.text()}`);
    return (await r.json()) as { access_token: string };
  };
  const token = (await login()).access_token;

  const dir = tempDir("secumon-bench-wrk-");
  /** One phase: wrk (CLIENTS connections, DURATION s) or the Bun fetch loop; latencies in ms. */
  async function load(name: string, clients: number, req: Req, total = REQUESTS): Promise<Figures> {
    const r = useWrk ? await wrkPhase(name, clients, req) : await fetchPhase(name, total, clients, req);
    console.log(
      `${name.padEnd(12)} ${String(r.n).padStart(6)} requests, ${clients} clients: p50 ${r.p50.toFixed(1)} ms, ` +
        `p99 ${r.p99.toFixed(1)} ms, ${r.rps.toFixed(0)} req/s`,
    );
    if (r.cpu) console.log(`${"".padEnd(12)} ${r.cpu}`);
    return r;
  }

  async function wrkPhase(name: string, clients: number, req: Req): Promise<Figures> {
    const lua = `${dir}/${name.replace(/\W/g, "_")}.lua`;
    const paths = req.paths.map((x) => JSON.stringify(x).replace(/^"|"$/g, "'")).join(",");
    await Bun.write(
      lua,
      `local paths = {${paths}}
local i = 0
wrk.method = "${req.method ?? "GET"}"
${req.body ? `wrk.body = '${req.body}'\nwrk.headers["Content-Type"] = "application/json"` : ""}
${req.token ? `wrk.headers["Authorization"] = "Bearer ${req.token}"` : ""}
request = function()
  i = i + 1
  return wrk.format(nil, paths[(i % #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("WRK %d %d %d %d %f %f\\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    0, latency:percentile(50), latency:percentile(99)))
end
`,
    );
    const run = async (seconds: number, c: number) => {
      const watched = [process.pid, ...(await backends())];
      const before = cpuSample(watched);
      const m0 = machineMs();
      const w0 = performance.now();
      const p = Bun.spawn(["wrk", "-t1", `-c${c}`, `-d${seconds}s`, "--timeout", "10s", "-s", lua, base], {
        stdout: "pipe",
        stderr: "pipe",
      });
      const out = await new Response(p.stdout).text();
      if ((await p.exited) !== 0) throw new Error(`wrk failed: ${await new Response(p.stderr).text()}`);
      const wall = performance.now() - w0;
      const after = cpuSample(watched);
      const m1 = machineMs();
      const m = /WRK (\d+) (\d+) (\d+) \d+ ([\d.]+) ([\d.]+)/.exec(out);
      if (!m) throw new Error(`wrk printed no figures: ${out}`);
      if (Number(m[3]) > 0)
        throw new Error(`${name}: ${m[3]} failed requests (non-2xx or socket errors)\n${out}`);
      const n = Number(m[1]);
      const cpu = runCpu(before, after, p, m1.busy - m0.busy, wall, n);
      return { n, rps: n / (Number(m[2]) / 1e6), p50: Number(m[4]) / 1000, p99: Number(m[5]) / 1000, cpu };
    };
    await run(3, clients); // warm-up: every pooled connection has prepared its statements
    return run(req.seconds ?? DURATION, clients);
  }

  /** The CPU split of one measured run: this process (the API), the backends, the load tool, the machine. */
  function runCpu(
    before: Map<number, number>,
    after: Map<number, number>,
    loadTool: Subprocess,
    machineBusyMs: number,
    wall: number,
    n: number,
  ) {
    const apiMs = (after.get(process.pid) ?? 0) - (before.get(process.pid) ?? 0);
    return describeCpu(
      {
        api: apiMs,
        pg: delta(before, after) - apiMs,
        load: Number(loadTool.resourceUsage()?.cpuTime.total ?? 0) / 1000,
        machine: machineBusyMs,
      },
      wall,
      n,
    );
  }

  /** Sign-ins at a steady LOGIN_RATE per second (bench/open-loop.ts, its own process), after a 2 s warm-up. */
  async function openLoop(name: string, req: Req): Promise<Figures> {
    const run = async (seconds: number) => {
      const watched = [process.pid, ...(await backends())];
      const before = cpuSample(watched);
      const m0 = machineMs();
      const w0 = performance.now();
      const p = Bun.spawn(
        [
          process.execPath,
          `${import.meta.dir}/open-loop.ts`,
          `${base}${req.paths[0]}`,
          req.method ?? "GET",
          req.body ?? "",
          String(LOGIN_RATE),
          String(seconds),
        ],
        { stdout: "pipe", stderr: "pipe" },
      );
      const out = await new Response(p.stdout).text();
      if ((await p.exited) !== 0)
        throw new Error(`open-loop client failed: ${await new Response(p.stderr).text()}`);
      const wall = performance.now() - w0;
      const after = cpuSample(watched);
      const m1 = machineMs();
      const m = /OPEN (\d+) (\d+) ([\d.]+) ([\d.]+)/.exec(out);
      if (!m) throw new Error(`the open-loop client printed no figures: ${out}`);
      if (Number(m[2]) > 0) throw new Error(`${name}: ${m[2]} failed requests\n${out}`);
      const n = Number(m[1]);
      const cpu = runCpu(before, after, p, m1.busy - m0.busy, wall, n);
      return { n, rps: n / seconds, p50: Number(m[3]), p99: Number(m[4]), cpu };
    };
    await run(2);
    const r = await run(req.seconds ?? DURATION);
    console.log(
      `${name.padEnd(12)} ${String(r.n).padStart(6)} requests, open loop: p50 ${r.p50.toFixed(1)} ms, ` +
        `p99 ${r.p99.toFixed(1)} ms, ${r.rps.toFixed(0)} req/s`,
    );
    console.log(`${"".padEnd(12)} ${r.cpu}`);
    return r;
  }

  async function fetchPhase(name: string, total: number, clients: number, req: Req): Promise<Figures> {
    const one = (i: number) =>
      fetch(`${base}${req.paths[i % req.paths.length]}`, {
        method: req.method ?? "GET",
        headers: {
          ...(req.token ? { authorization: `Bearer ${req.token}` } : {}),
          ...(req.body ? { "content-type": "application/json" } : {}),
        },
        body: req.body,
      });
    for (let i = 0; i < Math.min(20, total); i++) await (await one(i)).arrayBuffer(); // warm-up
    const lat: number[] = [];
    let next = 0;
    const t = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let i = next++; i < total; i = next++) {
          const s = performance.now();
          const r = await one(i);
          await r.arrayBuffer();
          if (r.status !== 200) throw new Error(`${name}: HTTP ${r.status}`);
          lat.push(performance.now() - s);
        }
      }),
    );
    const wall = (performance.now() - t) / 1000;
    lat.sort((a, b) => a - b);
    const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] as number;
    return { n: lat.length, p50: pct(50), p99: pct(99), rps: lat.length / wall };
  }

  const agentPaths = (range: string) =>
    Array.from({ length: 256 }, (_, i) => `/api/v1/agents/${agent(i)}/metrics?from=-${range}&to=now`);
  const agent = (i: number) => agents[(i * 7919) % agents.length] as string;
  const loginReq: Req = {
    paths: ["/api/v1/auth/login"],
    method: "POST",
    body: loginBody,
    seconds: LOGIN_SECONDS,
  };
  const phases = (process.env.PHASES ?? "chart24h,chart30d,list,login").split(",");
  const skipped = { n: 0, p50: Number.NaN, p99: Number.NaN, rps: Number.NaN };
  const c24 = phases.includes("chart24h")
    ? await load("chart 24h", CLIENTS, { paths: agentPaths("24h"), token })
    : skipped;
  const c30 = phases.includes("chart30d")
    ? await load(`chart ${DAYS}d`, CLIENTS, { paths: agentPaths(`${DAYS}d`), token })
    : skipped;
  const list = phases.includes("list")
    ? await load("agents list", CLIENTS, { paths: ["/api/v1/agents"], token }, REQUESTS * 2)
    : skipped;
  const l1 = phases.includes("login") ? await load("login", 1, loginReq, Math.min(LOGINS, 50)) : skipped;
  const lOpen = phases.includes("login") ? await openLoop(`login ${LOGIN_RATE}/s`, loginReq) : skipped;
  const l20 = phases.includes("login") ? await load("login", CLIENTS, loginReq, LOGINS) : skipped;
  const hashMs = await argonCost();
  console.log(
    `one argon2id hash (${PASSWORD_PARAMS}): ${hashMs.toFixed(1)} ms of one core (median of 20, server idle)`,
  );
  const sample = (await (
    await fetch(`${base}${agentPaths(`${DAYS}d`)[0]}`, { headers: { authorization: `Bearer ${token}` } })
  ).json()) as {
    resolution: string;
    columns: { time: unknown[] };
  };
  console.log(`(a ${DAYS}-day chart: resolution ${sample.resolution}, ${sample.columns.time.length} points)`);

  await app.stop(true);
  result({
    chart24h_p99_ms: c24.p99.toFixed(1),
    chart30d_p99_ms: c30.p99.toFixed(1),
    login_p99_ms: lOpen.p99.toFixed(1),
    login_rate_per_s: LOGIN_RATE,
    login_concurrent_p99_ms: l20.p99.toFixed(1),
    agents_list_p99_ms: list.p99.toFixed(1),
    login_1client_p99_ms: l1.p99.toFixed(1),
    chart24h_rps: c24.rps.toFixed(0),
    chart30d_rps: c30.rps.toFixed(0),
    agents_list_rps: list.rps.toFixed(0),
    login_rps: l20.rps.toFixed(0),
    argon2_hash_ms: hashMs.toFixed(1),
    load_tool: useWrk ? "wrk" : "bun-fetch",
    loadavg_1m: loadavg()[0]?.toFixed(2) ?? "?",
    days: DAYS,
    agents: AGENTS,
    clients: CLIENTS,
  });
} finally {
  await sql.end({ timeout: 5 });
  await stopTestCluster();
  removeTempDirs();
}
