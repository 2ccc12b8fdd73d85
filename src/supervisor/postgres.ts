/**
 * The embedded PostgreSQL cluster, used when no `database.url` is configured: initdb on first start, then
 * `postgres` listening on a Unix socket only (mode 0700, under the data directory), never on TCP.
 * PostgreSQL refuses to run as root, so when the collector is root the cluster runs as the `postgres`
 * system user (Debian's package creates it).
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { CollectorError } from "../lib/errors.ts";
import type { Logger } from "../observability/logger.ts";
import type { ChildEvents, RestartPolicy } from "./child.ts";
import { SupervisedChild } from "./child.ts";

export interface EmbeddedPgOptions {
  dataDir: string;
  port: number;
  /** Directory holding initdb and postgres; auto-detected when empty. */
  binDir?: string;
  database?: string;
}

export interface EmbeddedPg {
  child: SupervisedChild;
  /** libpq-style URL; the socket directory is in the `host` query parameter. */
  url: string;
  socketDir: string;
}

const SUPERUSER = "secumon";

/** Finds the newest installed PostgreSQL server binaries (Debian layout first). */
export function findPgBinDir(configured?: string): string {
  const candidates: string[] = [];
  if (configured) candidates.push(configured);
  else {
    const base = "/usr/lib/postgresql";
    if (existsSync(base)) {
      const versions = readdirSync(base)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a));
      candidates.push(...versions.map((v) => join(base, v, "bin")));
    }
    candidates.push("/usr/local/pgsql/bin", "/usr/bin");
  }
  for (const dir of candidates) {
    if (existsSync(join(dir, "postgres")) && existsSync(join(dir, "initdb"))) return dir;
  }
  throw new CollectorError(
    "DEPENDENCY_MISSING",
    configured
      ? `no PostgreSQL server binaries (postgres, initdb) in ${configured} (database.embedded.bin_dir). Point it at the folder holding them.`
      : "no PostgreSQL server installation found for the embedded database. Install it (Debian: apt-get install postgresql), " +
          "or use an existing server by setting database.url (SECUMON_DATABASE__URL).",
  );
}

/** The uid/gid the cluster runs as: ourselves, or the `postgres` user when we are root. */
function clusterUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const passwd = Bun.spawnSync(["getent", "passwd", "postgres"]).stdout.toString().trim();
  const [, , uid, gid] = passwd.split(":");
  if (!uid || !gid) {
    throw new CollectorError(
      "DEPENDENCY_MISSING",
      "the collector runs as root and PostgreSQL refuses to: create the `postgres` system user " +
        "(apt-get install postgresql does), or run the collector as an unprivileged user.",
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

function runAsArgv(user: { uid: number; gid: number } | null, argv: string[]): string[] {
  if (!user) return argv;
  return ["/usr/bin/setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "--", ...argv];
}

/** Socket paths are limited to 107 bytes; fall back to a private directory under $TMPDIR when ours is too long. */
function socketDirFor(pgDir: string, port: number, user: { uid: number; gid: number } | null): string {
  const preferred = join(pgDir, "run");
  if (`${preferred}/.s.PGSQL.${port}`.length <= 100) return preferred;
  const hash = new Bun.CryptoHasher("sha256").update(pgDir).digest("hex").slice(0, 12);
  const dir = join(tmpdir(), `secumon-pg-${hash}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (user) chownSync(dir, user.uid, user.gid);
  return dir;
}

export async function prepareEmbeddedPg(
  o: EmbeddedPgOptions,
  policy: RestartPolicy,
  log: Logger,
  events?: ChildEvents,
): Promise<EmbeddedPg> {
  const binDir = findPgBinDir(o.binDir);
  const user = clusterUser();
  const pgDir = resolve(o.dataDir, "postgres");
  const clusterDir = join(pgDir, "cluster");
  mkdirSync(clusterDir, { recursive: true, mode: 0o700 });
  if (user) {
    // the cluster's user must traverse the data directory (not list it): grant o+x on it alone
    const dataDir = resolve(o.dataDir);
    chmodSync(dataDir, statSync(dataDir).mode | 0o001);
    chownSync(pgDir, user.uid, user.gid);
    chownSync(clusterDir, user.uid, user.gid);
    const probe = Bun.spawnSync(runAsArgv(user, ["/usr/bin/test", "-w", clusterDir]));
    if (probe.exitCode !== 0) {
      throw new CollectorError(
        "DATA_DIR_UNWRITABLE",
        `the embedded PostgreSQL runs as the 'postgres' user, which cannot reach ${clusterDir}. ` +
          "Every parent folder of the data directory must be searchable by it (chmod o+x), " +
          "or choose a data directory elsewhere with --data-dir.",
      );
    }
  }
  const socketDir = socketDirFor(pgDir, o.port, user);
  mkdirSync(socketDir, { recursive: true, mode: 0o700 });
  if (user) chownSync(socketDir, user.uid, user.gid);

  if (!existsSync(join(clusterDir, "PG_VERSION"))) {
    // a half-finished initdb leaves files behind that make the next one fail
    for (const f of readdirSync(clusterDir)) rmSync(join(clusterDir, f), { recursive: true, force: true });
    log.info(
      { dir: clusterDir },
      "initializing the embedded PostgreSQL cluster (first start; takes a few seconds)",
    );
    const t0 = performance.now();
    const res = Bun.spawnSync(
      runAsArgv(user, [
        join(binDir, "initdb"),
        "-D",
        clusterDir,
        "-U",
        SUPERUSER,
        "--auth=trust",
        "--encoding=UTF8",
        "--no-locale",
        "--no-instructions",
      ]),
      { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8" } },
    );
    if (res.exitCode !== 0) {
      throw new CollectorError(
        "CHILD_FAILED",
        `initdb failed (status ${res.exitCode}) for ${clusterDir}:\n${res.stderr.toString().trim()}\n` +
          "Check that the data directory is writable and has free space, then start again.",
      );
    }
    // socket-only; trust is safe because the socket directory is private (0700) to the cluster's user
    writeFileSync(join(clusterDir, "pg_hba.conf"), "local all all trust\n");
    if (user) chownSync(join(clusterDir, "pg_hba.conf"), user.uid, user.gid);
    log.info({ ms: Math.round(performance.now() - t0) }, "embedded PostgreSQL cluster initialized");
  } else if (statSync(clusterDir).uid !== (user?.uid ?? process.getuid?.())) {
    throw new CollectorError(
      "DATA_DIR_UNWRITABLE",
      `${clusterDir} belongs to another user; chown it to the user the collector runs the database as.`,
    );
  }

  const database = o.database ?? "secumon";
  const url = `postgres://${SUPERUSER}@localhost:${o.port}/${database}?host=${encodeURIComponent(socketDir)}`;
  const admin = { path: join(socketDir, `.s.PGSQL.${o.port}`), user: SUPERUSER };
  const child = new SupervisedChild(
    {
      name: "postgres",
      argv: [
        join(binDir, "postgres"),
        "-D",
        clusterDir,
        "-p",
        String(o.port),
        "-c",
        "listen_addresses=",
        "-c",
        `unix_socket_directories=${socketDir}`,
        "-c",
        "unix_socket_permissions=0700",
        "-c",
        "log_line_prefix=",
        "-c",
        "max_connections=200",
        ...writeHeavySettings(binDir, clusterDir, user),
      ],
      runAs: user,
      stopSignal: "SIGINT", // fast shutdown: roll back open transactions, checkpoint, exit
      probe: () => ensureDatabase(admin, database),
      startTimeoutMs: 60_000,
      levelOf: (l) =>
        /^(FATAL|PANIC|ERROR)/.test(l)
          ? "error"
          : /^WARNING/.test(l)
            ? "warn"
            : /^(DEBUG|STATEMENT)/.test(l)
              ? "debug"
              : "info",
    },
    policy,
    log,
    events,
  );
  return { child, url, socketDir };
}

/**
 * Server settings for a write-heavy appliance (telemetry COPY around the clock), durability untouched: fsync,
 * synchronous_commit and full_page_writes keep their safe defaults, so a commit is still on disk when
 * acknowledged. What changes (docs/telemetry-path.md, measured with bench/ingest.ts):
 *   - shared_buffers 25 % of RAM (128 MB to 8 GB): the recent part of each raw table's btree must stay in
 *     memory, or every COPY reads and writes index pages back and forth (the default 128 MB thrashes);
 *   - wal_buffers 64 MB: one group's COPY writes several MB of WAL, more than the default 4 MB buffer holds;
 *   - max_wal_size 4 GB, checkpoint_timeout 15 min: fewer checkpoints, so fewer full-page images after each
 *     (up to 4 GB of WAL on disk, recycled; crash recovery replays at most that);
 *   - wal_compression lz4 (pglz when the server was built without lz4): the full-page images that remain
 *     are compressed.
 */
export function writeHeavySettings(
  binDir: string,
  clusterDir: string,
  user: { uid: number; gid: number } | null,
  ramBytes = totalmem(),
): string[] {
  const sharedMb = Math.min(8192, Math.max(128, Math.floor(ramBytes / 4 / 2 ** 20)));
  const lz4 = Bun.spawnSync(
    runAsArgv(user, [
      join(binDir, "postgres"),
      "-D",
      clusterDir,
      "-C",
      "wal_compression",
      "-c",
      "wal_compression=lz4",
    ]),
    { stdout: "ignore", stderr: "ignore" },
  );
  return [
    ["shared_buffers", `${sharedMb}MB`],
    ["wal_buffers", "64MB"],
    ["max_wal_size", "4GB"],
    ["min_wal_size", "1GB"],
    ["checkpoint_timeout", "15min"],
    ["wal_compression", lz4.exitCode === 0 ? "lz4" : "pglz"],
  ].flatMap(([k, v]) => ["-c", `${k}=${v}`]);
}

/** Ready when we can connect; creates the collector's database on first start. */
async function ensureDatabase(admin: { path: string; user: string }, database: string): Promise<boolean> {
  if (!existsSync(admin.path)) return false;
  const sql = postgres({ ...admin, database: "postgres", max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    const rows = await sql`select 1 from pg_database where datname = ${database}`;
    if (rows.length === 0) await sql.unsafe(`create database "${database.replace(/"/g, '""')}"`);
    return true;
  } finally {
    await sql.end({ timeout: 1 });
  }
}
