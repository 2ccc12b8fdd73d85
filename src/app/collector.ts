/**
 * The collector as an embeddable object: `createCollector(options)` returns `{ start(), stop() }`; the CLI,
 * the tests and the benchmarks all start it the same way. Start order (stop is the reverse):
 *   data directory → HTTP (/health answers, /ready says why not yet) → PostgreSQL (embedded or external)
 *   → migrations → nats-server (embedded or external) → roles, each once its dependencies are ready.
 */
import { accessSync, constants, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Sql } from "postgres";
import { executable } from "../assets/binaries.ts";
import { embeddedBinaries, embeddedMigrations } from "../assets/embedded.gen.ts";
import { connectNats } from "../bus/connect.ts";
import { ensureTelemetryStream } from "../bus/telemetry.ts";
import { type Config, parseDuration } from "../config/schema.ts";
import { CollectorError, errorMessage } from "../lib/errors.ts";
import { Group } from "../lib/lifecycle.ts";
import type { Logger } from "../observability/logger.ts";
import { Registry, registerProcessMetrics } from "../observability/metrics.ts";
import { loadKeyring } from "../security/keyring.ts";
import { connect } from "../storage/db.ts";
import { runMigrations } from "../storage/migrate.ts";
import type { ChildEvents, RestartPolicy, SupervisedChild } from "../supervisor/child.ts";
import { natsChild, natsReady, natsUrl } from "../supervisor/nats.ts";
import { assertPortFree, freePort } from "../supervisor/ports.ts";
import { prepareEmbeddedPg } from "../supervisor/postgres.ts";
import { createHttpApp, listen } from "./http.ts";
import type { RoleContext } from "./role.ts";
import { ROLES } from "./roles.ts";
import { VERSION } from "./version.ts";
import { ExternalWatch } from "./watch.ts";

export interface CollectorOptions {
  /** Validated config with secrets resolved. */
  config: Config;
  log: Logger;
}

export interface Collector {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Reasons the collector is not ready (empty when ready). */
  notReady(): string[];
  readonly httpPort: number;
  readonly databaseUrl: string;
  readonly natsUrl: string;
  readonly metrics: Registry;
  /** Supervised child processes, by name (tests and /metrics). */
  readonly children: ReadonlyMap<string, SupervisedChild>;
}

export function createCollector({ config, log }: CollectorOptions): Collector {
  const metrics = new Registry({
    onCollectError: (err) => log.warn({ err: String(err) }, "metrics collector failed"),
  });
  registerProcessMetrics(metrics, VERSION);
  const childUp = metrics.gauge({
    name: "secumon_child_up",
    help: "1 when the supervised child process is running and ready.",
    labelNames: ["child"],
  });
  const childRestarts = metrics.counter({
    name: "secumon_child_restarts_total",
    help: "Times the supervisor restarted a child process after it died.",
    labelNames: ["child"],
  });
  const childRss = metrics.gauge({
    name: "secumon_child_resident_memory_bytes",
    help: "Resident memory of each supervised child process.",
    labelNames: ["child"],
  });
  const roleUp = metrics.gauge({
    name: "secumon_role_up",
    help: "1 when the role started and reports ready.",
    labelNames: ["role"],
  });

  const dataDir = resolve(config.data_dir);
  const stopTimeoutMs = parseDuration(config.supervisor.stop_timeout);
  const group = new Group(log, stopTimeoutMs);
  const children = new Map<string, SupervisedChild>();
  const pending = new Set<string>(["starting"]);
  const policy: RestartPolicy = {
    initialMs: parseDuration(config.supervisor.restart_backoff_initial),
    maxMs: parseDuration(config.supervisor.restart_backoff_max),
    resetAfterMs: 60_000,
  };
  const events: ChildEvents = {
    onRestart: (name) => childRestarts.inc({ child: name }),
    onStateChange: (name, up) => childUp.set({ child: name }, up ? 1 : 0),
  };
  metrics.collect(() => {
    for (const [name, child] of children) {
      const pid = child.pid;
      childRss.set({ child: name }, pid ? rssOf(pid) : 0);
    }
    for (const svc of group.services) {
      if (svc.name.startsWith("role:")) roleUp.set({ role: svc.name.slice(5) }, svc.readiness?.() ? 0 : 1);
    }
  });

  let httpPort = 0;
  let databaseUrl = config.database.url;
  let natsUrlValue = config.nats.url;
  let sql: Sql | null = null;
  let lock: DataDirLock | null = null;

  const notReady = (): string[] => {
    const reasons = [...pending];
    for (const svc of group.services) {
      const r = svc.readiness?.();
      if (r) reasons.push(r);
    }
    return reasons;
  };

  const http = createHttpApp({ log: log.child({ component: "http" }), metrics, notReady });

  async function start(): Promise<void> {
    const t0 = performance.now();
    log.info({ version: VERSION, roles: config.roles, dataDir }, "starting SecuMon Collector");
    lock = prepareDataDir(dataDir);

    const server = await listen(http, config.api.host, config.api.port);
    httpPort = server.port;
    await group.start({ name: "http", start: async () => {}, stop: server.stop });
    log.info(
      { url: `http://${config.api.host}:${httpPort}` },
      `HTTP listening on http://${config.api.host}:${httpPort}`,
    );

    const needs = new Set(config.roles.flatMap((r) => ROLES[r].needs));
    // migrations always need the database, even for a nats-only role set
    if (needs.has("database") || needs.size === 0) {
      if (!databaseUrl) {
        pending.add("postgres: starting");
        const port = config.database.embedded.port || freePort();
        const pg = await prepareEmbeddedPg(
          { dataDir, port, binDir: config.database.embedded.bin_dir || undefined },
          policy,
          log.child({ component: "supervisor" }),
          events,
        );
        children.set("postgres", pg.child);
        await group.start(pg.child);
        pending.delete("postgres: starting");
        databaseUrl = pg.url;
      }
      sql = connect(databaseUrl, {
        max: config.database.max_connections,
        log: log.child({ component: "db" }),
      });
      const db = sql;
      if (!children.has("postgres")) {
        await group.start(
          new ExternalWatch("database", "database.url", () => db`select 1`.then(() => true), log),
        );
      }
      pending.add("migrations: running");
      await runMigrations(db, embeddedMigrations, log.child({ component: "migrate" }));
      pending.delete("migrations: running");
      await group.start({ name: "db-pool", start: async () => {}, stop: () => db.end({ timeout: 5 }) });
    }

    if (needs.has("nats")) {
      if (!natsUrlValue) {
        pending.add("nats: starting");
        const port = config.nats.port || freePort(config.nats.host);
        await assertPortFree(config.nats.host, port, "nats.port", "SECUMON_NATS__PORT");
        const child = natsChild(
          {
            binary: await executable("nats-server", dataDir),
            dataDir,
            host: config.nats.host,
            port,
            syncInterval: config.nats.sync_interval,
            maxStoreBytes: config.nats.max_store_bytes + 2 ** 30, // headroom above the stream limit
          },
          policy,
          log.child({ component: "supervisor" }),
          events,
        );
        children.set("nats", child);
        await group.start(child);
        pending.delete("nats: starting");
        natsUrlValue = natsUrl({ host: config.nats.host, port });
      } else {
        const url = natsUrlValue;
        await group.start(new ExternalWatch("nats", "nats.url", () => natsReady(url), log));
      }
    }

    let nc: NatsConnection | null = null;
    if (needs.has("nats")) {
      const conn = await connectNats(natsUrlValue, `secumon-collector ${config.roles.join(",")}`, log);
      nc = conn;
      await group.start({
        name: "nats-client",
        start: async () => {},
        stop: () => conn.drain().catch(() => conn.close()),
      });
      await ensureTelemetryStream(await jetstreamManager(conn), {
        maxAgeMs: parseDuration(config.nats.stream_max_age),
        maxBytes: config.nats.max_store_bytes,
        shards: config.nats.telemetry_shards,
      });
    }

    const ctx: RoleContext = {
      config,
      log,
      metrics,
      sql: sql as Sql,
      pool: (max) => connect(databaseUrl, { max, log: log.child({ component: "db" }) }),
      natsUrl: natsUrlValue,
      nats: nc,
      keyring: loadKeyring({ encryptionKey: config.security.encryption_key, dataDir }),
      dataDir,
      http: http as unknown as RoleContext["http"],
    };
    for (const name of config.roles) {
      const role = ROLES[name];
      const svc = role.create({ ...ctx, log: log.child({ role: name }) });
      // wrapped, not spread: a service may be a class instance whose methods live on its prototype
      await group.start({
        name: `role:${name}`,
        start: () => svc.start(),
        stop: () => svc.stop(),
        readiness: () => svc.readiness?.() ?? null,
      });
    }
    // roles mount their routes after listen(); Elysia serves such routes only once the app is recompiled
    http.compile();
    pending.delete("starting");
    log.info(
      { ms: Math.round(performance.now() - t0), url: `http://${config.api.host}:${httpPort}` },
      `SecuMon Collector ready on http://${config.api.host}:${httpPort}`,
    );
  }

  let stopping: Promise<void> | null = null;
  async function stop(): Promise<void> {
    stopping ??= (async () => {
      log.info("stopping SecuMon Collector");
      try {
        await group.stop();
      } finally {
        lock?.release();
        log.info("SecuMon Collector stopped");
      }
    })();
    return stopping;
  }

  return {
    start: async () => {
      try {
        await start();
      } catch (err) {
        await group.stop().catch((e) => log.error({ err: errorMessage(e) }, "rollback after failed start"));
        lock?.release();
        throw err;
      }
    },
    stop,
    notReady,
    get httpPort() {
      return httpPort;
    },
    get databaseUrl() {
      return databaseUrl;
    },
    get natsUrl() {
      return natsUrlValue;
    },
    metrics,
    children,
  };
}

void embeddedBinaries;

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface DataDirLock {
  release(): void;
}

/** Creates the data directory, proves it writable, and takes a pid lock so two collectors never share it. */
function prepareDataDir(dir: string): DataDirLock {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    accessSync(dir, constants.W_OK);
    const probe = join(dir, `.write-test-${process.pid}`);
    writeFileSync(probe, "");
    rmSync(probe);
  } catch (err) {
    throw new CollectorError(
      "DATA_DIR_UNWRITABLE",
      `the data directory ${dir} is not writable (${(err as { code?: string }).code ?? errorMessage(err)}). ` +
        "Fix its ownership or permissions, or choose another with --data-dir or data_dir.",
    );
  }
  const lockFile = join(dir, "collector.pid");
  try {
    const other = Number(readFileSync(lockFile, "utf8").trim());
    if (other && other !== process.pid && isAlive(other)) {
      throw new CollectorError(
        "DATA_DIR_UNWRITABLE",
        `another collector (pid ${other}) is already using the data directory ${dir}. ` +
          "Stop it first, or give this one its own --data-dir.",
      );
    }
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw err;
  }
  writeFileSync(lockFile, `${process.pid}\n`);
  return {
    release() {
      try {
        if (readFileSync(lockFile, "utf8").trim() === String(process.pid)) rmSync(lockFile);
      } catch {
        // already gone
      }
    },
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
