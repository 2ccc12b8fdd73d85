/**
 * make bench-api: API latency under load (issue #6).
 *   Data: AGENTS (200) agents × DAYS (30) days of 1-minute system_metrics generated in SQL, then the 5-minute
 *   and hourly rollups refreshed with secumon_refresh_rollup (the maintenance job's function) and
 *   rollup_progress set, as the job would leave them.
 *   Load tool: a fetch loop in Bun (this file) — CLIENTS (20) concurrent clients, each sending its next
 *   request as soon as the previous answer is read, over real HTTP on loopback.
 *   Figures: p50/p99 of a 24-hour chart, a DAYS-day chart, sign-in (argon2id), and GET /agents.
 * Goals: chart24h p99 ≤ 50 ms, chart30d p99 ≤ 150 ms, login p99 ≤ 150 ms, agents list p99 ≤ 20 ms.
 */
import { apiPlugin } from "../src/api/app.ts";
import type { ApiDeps } from "../src/api/deps.ts";
import { memoryStore } from "../src/api/lib/store.ts";
import { createHttpApp } from "../src/app/http.ts";
import { jwtSigner } from "../src/auth/jwt.ts";
import { hashPassword } from "../src/auth/passwords.ts";
import { loadConfig } from "../src/config/load.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { Registry } from "../src/observability/metrics.ts";
import { createKeyring } from "../src/security/keyring.ts";
import { connect } from "../src/storage/db.ts";
import { migratedDatabase, stopTestCluster } from "../test/support/pg.ts";
import { removeTempDirs, tempDir } from "../test/support/tmp.ts";
import { printMachine, result } from "./machine.ts";

const AGENTS = Number(process.env.AGENTS ?? 200);
const DAYS = Number(process.env.DAYS ?? 30);
const CLIENTS = Number(process.env.CLIENTS ?? 20);
const REQUESTS = Number(process.env.REQUESTS ?? 1000);
const LOGINS = Number(process.env.LOGINS ?? 200);
const PASSWORD = "bench password, long enough";
const DAY = 86_400_000;

printMachine();
console.log(
  `load tool: Bun fetch loop (bench/api.ts), ${CLIENTS} concurrent clients, keep-alive, real HTTP on 127.0.0.1`,
);
console.log(
  `data: ${AGENTS} agents × ${DAYS} days of 1-minute system_metrics (${(AGENTS * DAYS * 1440).toLocaleString()} rows)`,
);

const url = await migratedDatabase();
const sql = connect(url, { max: 20, log: silentLogger() });
const secs = (t0: number) => ((performance.now() - t0) / 1000).toFixed(1);

try {
  const now = Math.floor(Date.now() / 60_000) * 60_000;
  const [tenant] = await sql`insert into tenants (name, slug) values ('Bench', 'bench') returning id`;
  const tenantId = tenant?.id as string;
  await sql`insert into users (tenant_id, email, role, password_hash)
            values (${tenantId}, 'bench@bench.test', 'admin', ${await hashPassword(PASSWORD)})`;
  const agents = (
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
  await sql`analyze`;
  console.log(`rollups refreshed and analyzed in ${secs(t0)} s`);

  const config = loadConfig({
    env: {},
    overrides: { api: { port: 0, rate_limiting: { enabled: false } }, logging: { level: "error" } },
  });
  const deps: ApiDeps = {
    config,
    sql,
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
  const auth = { authorization: `Bearer ${token}` };

  /** CLIENTS loops sharing `total` requests; returns latencies in ms, sorted. */
  async function load(name: string, total: number, clients: number, one: (i: number) => Promise<Response>) {
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
    const r = { p50: pct(50), p99: pct(99), rps: lat.length / wall };
    console.log(
      `${name.padEnd(12)} ${String(lat.length).padStart(5)} requests, ${clients} clients: p50 ${r.p50.toFixed(1)} ms, ` +
        `p99 ${r.p99.toFixed(1)} ms, ${r.rps.toFixed(0)} req/s`,
    );
    return r;
  }

  const agent = (i: number) => agents[(i * 7919) % agents.length] as string;
  const chart = (range: string) => (i: number) =>
    fetch(`${base}/api/v1/agents/${agent(i)}/metrics?from=-${range}&to=now`, { headers: auth });
  const c24 = await load("chart 24h", REQUESTS, CLIENTS, chart("24h"));
  const c30 = await load(`chart ${DAYS}d`, REQUESTS, CLIENTS, chart(`${DAYS}d`));
  const list = await load("agents list", REQUESTS * 2, CLIENTS, () =>
    fetch(`${base}/api/v1/agents`, { headers: auth }),
  );
  const loginOne = (_: number) =>
    fetch(`${base}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: loginBody,
    });
  const l1 = await load("login", Math.min(LOGINS, 50), 1, loginOne);
  const l20 = await load("login", LOGINS, CLIENTS, loginOne);
  const sample = (await (await chart(`${DAYS}d`)(0)).json()) as {
    resolution: string;
    columns: { time: unknown[] };
  };
  console.log(`(a ${DAYS}-day chart: resolution ${sample.resolution}, ${sample.columns.time.length} points)`);

  await app.stop(true);
  result({
    chart24h_p99_ms: c24.p99.toFixed(1),
    chart30d_p99_ms: c30.p99.toFixed(1),
    login_p99_ms: l20.p99.toFixed(1),
    agents_list_p99_ms: list.p99.toFixed(1),
    login_1client_p99_ms: l1.p99.toFixed(1),
    days: DAYS,
    agents: AGENTS,
    clients: CLIENTS,
  });
} finally {
  await sql.end({ timeout: 5 });
  await stopTestCluster();
  removeTempDirs();
}
