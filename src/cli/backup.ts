/**
 * `secumon-collector backup | restore | setup-code`.
 *
 * backup: one encrypted file (backup-archive.ts) holding a manifest, the data directory's generated secrets
 * (data-files.ts) and a pg_dump of the collector's database, taken while the collector runs.
 * restore: checks the whole file first (key, integrity, migrations this binary knows), then restores the
 * database in one transaction and the files; the collector must be stopped.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { VERSION } from "../app/version.ts";
import { embeddedMigrations } from "../assets/embedded.gen.ts";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { resolveSecrets } from "../config/secrets.ts";
import { CollectorError, UsageError } from "../lib/errors.ts";
import { createLogger, type Logger } from "../observability/logger.ts";
import { parseArgs } from "./args.ts";
import { ArchiveWriter, keyFileIsShared, openArchive, readKeyFile } from "./backup-archive.ts";
import {
  databaseInfo,
  ensureRoles,
  openTarget,
  runningCollector,
  startDump,
  startRestore,
  tableCount,
  wipeDatabase,
} from "./backup-db.ts";
import { type BackupFile, type Manifest, RecordWriter, readRecords } from "./backup-records.ts";
import { differs, listDataFiles, writeDataFile } from "./data-files.ts";
import { ensureSetupCode, readSetupCode, setupCodePath } from "./setup-code.ts";

const OPTIONS = `  --config FILE     YAML configuration file (the appliance's is /etc/secumon/collector.yaml)
  --data-dir DIR    data directory (default ./data; the appliance uses /var/lib/secumon)
  -h, --help        this help`;

export const BACKUP_HELP: Record<string, string> = {
  backup: `Usage: secumon-collector backup --out FILE --key-file KEY [--config FILE] [--data-dir DIR]

Writes one encrypted file holding a dump of the collector's database (pg_dump, custom format) and the data
directory's generated secrets (encryption key, JWT key, CA and server keys). Runs while the collector serves.
Encrypted with AES-256-GCM under a key derived (scrypt) from KEY; without KEY the backup cannot be read, so keep
a copy of it off the machine. Create one with: head -c 32 /dev/urandom | base64 > KEY; chmod 600 KEY

  --out FILE        file to write (must not exist; written as FILE.partial, renamed when complete)
  --key-file KEY    operator key file (at least 16 bytes)
${OPTIONS}`,
  restore: `Usage: secumon-collector restore --in FILE --key-file KEY [--force] [--config FILE] [--data-dir DIR]

Restores a backup made by \`secumon-collector backup\` into the configured database and data directory. Stop the
collector first (systemctl stop secumon-collector). The whole file is verified before anything changes; the
database is restored in one transaction. The next start applies any newer migrations.

  --in FILE         backup file
  --key-file KEY    the key file the backup was made with
  --force           replace a database that already has tables and data-directory secrets that differ
${OPTIONS}`,
  "setup-code": `Usage: secumon-collector setup-code [--create] [--config FILE] [--data-dir DIR]

Prints the one-time setup code with which the first administrator is created (POST /api/v1/setup, or the
web UI's first page). The code is removed once the first administrator exists.

  --create          make a new code when there is none (the appliance's first boot does this)
${OPTIONS}`,
};

const COMMON_FLAGS = { config: { value: true }, "data-dir": { value: true }, help: { value: false } };

function configFrom(flags: Record<string, string | true>): Config {
  return loadConfig({
    file: typeof flags.config === "string" ? flags.config : undefined,
    env: process.env,
    overrides: typeof flags["data-dir"] === "string" ? { data_dir: flags["data-dir"] } : {},
  });
}

function required(flags: Record<string, string | true>, name: string, cmd: string): string {
  const v = flags[name];
  if (typeof v !== "string")
    throw new UsageError(`${cmd}: --${name} is required; see \`secumon-collector ${cmd} --help\``);
  return v;
}

function noPositionals(cmd: string, positionals: string[]): void {
  if (positionals.length) throw new UsageError(`${cmd}: unexpected argument ${positionals[0]}; see --help`);
}

function loadKey(path: string, log: Logger): Buffer {
  const key = readKeyFile(path);
  if (keyFileIsShared(path))
    log.warn({ keyFile: path }, `key file ${path} is readable by other users: chmod 600 it`);
  return key;
}

const print = (help: string) => {
  console.log(help);
  return 0;
};

export async function backup(argv: string[]): Promise<number> {
  const spec = { ...COMMON_FLAGS, out: { value: true }, "key-file": { value: true } };
  const { flags, positionals } = parseArgs(argv, spec, "backup");
  if (flags.help) return print(BACKUP_HELP.backup!);
  noPositionals("backup", positionals);
  const out = resolve(required(flags, "out", "backup"));
  const keyFile = required(flags, "key-file", "backup");
  const config = await resolveSecrets(configFrom(flags));
  const log = createLogger({ level: config.logging.level });
  const dataDir = resolve(config.data_dir);
  const key = loadKey(keyFile, log);
  const t0 = performance.now();

  const partial = `${out}.partial`;
  if (existsSync(out))
    throw new UsageError(`backup: ${out} already exists; choose another name or remove it first`);
  let fd: number;
  const files = listDataFiles(dataDir);
  const target = await openTarget(config, dataDir, log.child({ component: "db" }));
  try {
    const info = await databaseInfo(target.sql);
    try {
      fd = openSync(partial, "wx", 0o600);
    } catch (e) {
      throw new CollectorError(
        "DATA_DIR_UNWRITABLE",
        `cannot create ${partial} (${(e as { code?: string }).code}): check the folder exists and is writable, ` +
          "and remove a leftover .partial file from an interrupted backup",
      );
    }
    let dbBytes = 0;
    try {
      const archive = new ArchiveWriter(fd, key);
      const rec = new RecordWriter(archive);
      const manifest: Manifest = {
        format: 1,
        created_at: new Date().toISOString(),
        collector_version: VERSION,
        hostname: hostname(),
        database: info,
        files: files.map((f) => ({ path: f.path, size: f.size, mode: f.mode })),
      };
      rec.manifest(manifest);
      for (const f of files)
        rec.file({ path: f.path, mode: f.mode, data: readFileSync(join(dataDir, f.path)) });
      const dump = startDump(config, target.url);
      dbBytes = await rec.database(dump.stream);
      await dump.done;
      rec.end();
      archive.finish();
      fsyncSync(fd);
      closeSync(fd);
      renameSync(partial, out);
      log.info(
        {
          out,
          bytes: archive.written,
          database_dump_bytes: dbBytes,
          files: files.length,
          migrations: info.migrations.length,
          database: target.describe,
          ms: Math.round(performance.now() - t0),
        },
        `backup written to ${out} (${(archive.written / 1048576).toFixed(1)} MiB, ${files.length} files)`,
      );
    } catch (e) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
      rmSync(partial, { force: true });
      throw e;
    }
  } finally {
    await target.close();
  }
  return 0;
}

interface Verified {
  manifest: Manifest;
  files: BackupFile[];
  dumpBytes: number;
}

/** First pass: authenticate every byte and check the framing, keeping the (small) files. */
async function verify(path: string, key: Buffer): Promise<Verified> {
  let manifest: Manifest | null = null;
  const files: BackupFile[] = [];
  let dumpBytes = 0;
  await readRecords(openArchive(path, key), path, {
    manifest: (m) => {
      manifest = m;
    },
    file: (f) => {
      files.push(f);
    },
    database: (seg) => {
      dumpBytes += seg.length;
    },
  });
  if (!manifest)
    throw new CollectorError("BAD_REQUEST", `backup file ${path} has no manifest; use another copy`);
  if (dumpBytes === 0)
    throw new CollectorError("BAD_REQUEST", `backup file ${path} holds no database dump; use another copy`);
  return { manifest, files, dumpBytes };
}

export async function restore(argv: string[]): Promise<number> {
  const spec = { ...COMMON_FLAGS, in: { value: true }, "key-file": { value: true }, force: { value: false } };
  const { flags, positionals } = parseArgs(argv, spec, "restore");
  if (flags.help) return print(BACKUP_HELP.restore!);
  noPositionals("restore", positionals);
  const input = resolve(required(flags, "in", "restore"));
  const keyFile = required(flags, "key-file", "restore");
  const force = flags.force === true;
  const config = await resolveSecrets(configFrom(flags));
  const log = createLogger({ level: config.logging.level });
  const dataDir = resolve(config.data_dir);
  const key = loadKey(keyFile, log);
  const t0 = performance.now();

  const live = runningCollector(dataDir);
  if (live !== null) {
    throw new CollectorError(
      "CONFLICT",
      `a collector (pid ${live}) is running on ${dataDir}: stop it first (systemctl stop secumon-collector), then restore`,
    );
  }
  const v = await verify(input, key);
  const known = new Set(embeddedMigrations.map((m) => m.name));
  const unknown = v.manifest.database.migrations.filter((m) => !known.has(m));
  if (unknown.length) {
    throw new CollectorError(
      "CONFLICT",
      `backup ${input} was made by a newer collector (${v.manifest.collector_version}); its database has migrations ` +
        `this binary (${VERSION}) does not know: ${unknown.join(", ")}. Restore it with version ${v.manifest.collector_version} or newer.`,
    );
  }
  const changed = v.files.filter((f) => differs(dataDir, f.path, f.data)).map((f) => f.path);
  if (changed.length && !force) {
    throw new CollectorError(
      "CONFLICT",
      `${dataDir} already holds other versions of ${changed.join(", ")}: restoring replaces them (data sealed with ` +
        "the current ones becomes unreadable). Run again with --force to replace them.",
    );
  }

  const target = await openTarget(config, dataDir, log.child({ component: "db" }));
  try {
    const tables = await tableCount(target.sql);
    if (tables > 0 && !force) {
      throw new CollectorError(
        "CONFLICT",
        `the target database (${target.describe}) already has ${tables} tables. Run again with --force to drop ` +
          "everything in it and restore the backup in its place.",
      );
    }
    if (tables > 0) {
      log.warn({ tables }, "--force: dropping the current contents of the database");
      await wipeDatabase(target.sql);
    }
    await ensureRoles(target.sql, log);
    const proc = startRestore(config, target.url);
    try {
      await readRecords(openArchive(input, key), input, {
        manifest: () => {},
        file: () => {},
        database: (seg) => proc.write(seg),
      });
    } catch (e) {
      proc.abort();
      await proc.finish().catch(() => {});
      throw e;
    }
    await proc.finish();
    for (const f of v.files) writeDataFile(dataDir, f.path, f.data, f.mode);
    // the restored database has its administrators: the fresh machine's setup code must not create another
    const [u] = await target.sql<{ n: number }[]>`select count(*)::int as n from users`.catch(() => [
      { n: 0 },
    ]);
    if ((u?.n ?? 0) > 0 && readSetupCode(dataDir) !== null) rmSync(setupCodePath(dataDir), { force: true });
    log.info(
      {
        in: input,
        made_at: v.manifest.created_at,
        made_by: v.manifest.collector_version,
        files: v.files.length,
        database_dump_bytes: v.dumpBytes,
        database: target.describe,
        ms: Math.round(performance.now() - t0),
      },
      `restored ${input} (made ${v.manifest.created_at} on ${v.manifest.hostname}); start the collector to apply newer migrations`,
    );
  } finally {
    await target.close();
  }
  return 0;
}

export async function setupCode(argv: string[], out: (s: string) => void): Promise<number> {
  const { flags, positionals } = parseArgs(argv, { ...COMMON_FLAGS, create: { value: false } }, "setup-code");
  if (flags.help) return print(BACKUP_HELP["setup-code"]!);
  noPositionals("setup-code", positionals);
  const dataDir = resolve(configFrom(flags).data_dir);
  if (flags.create) {
    out(ensureSetupCode(dataDir).code);
    return 0;
  }
  const code = readSetupCode(dataDir);
  if (code === null) {
    throw new CollectorError(
      "NOT_FOUND",
      `no setup code in ${setupCodePath(dataDir)}: the first administrator already exists (the code is removed once ` +
        "used). If the first administrator was never created, make a new code with `secumon-collector setup-code --create`.",
    );
  }
  out(code);
  return 0;
}
