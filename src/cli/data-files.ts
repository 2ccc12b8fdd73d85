/**
 * Files of the data directory that a backup carries: everything the collector generated once and cannot
 * regenerate without losing data (secrets/: the master encryption key, JWT key; the CA and server keys; the
 * WireGuard key) — not what is rebuilt or backed up otherwise: the embedded PostgreSQL cluster (dumped
 * instead), the JetStream store (in-flight telemetry, re-sent by agents), extracted executables, temp files.
 */
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";

/** Top-level entries of the data directory that are never backed up. */
const EXCLUDED_TOP = new Set(["postgres", "nats", "bin", "tmp", "collector.pid", "lost+found"]);
/** Single files never backed up: the one-time setup code belongs to the machine it was shown on. */
const EXCLUDED_FILES = new Set(["secrets/setup-code"]);

export function isBackedUp(rel: string): boolean {
  const top = rel.split("/")[0]!;
  if (EXCLUDED_TOP.has(top) || top.startsWith(".write-test-") || top.startsWith(".restore-")) return false;
  return !EXCLUDED_FILES.has(rel);
}

export interface DataFile {
  path: string;
  mode: number;
  size: number;
}

/** Regular files to back up, relative to the data directory, sorted. Symlinks and sockets are skipped. */
export function listDataFiles(dataDir: string): DataFile[] {
  const out: DataFile[] = [];
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(join(dataDir, rel));
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return;
      throw e;
    }
    for (const name of names.sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (!isBackedUp(r)) continue;
      const st = lstatSync(join(dataDir, r));
      if (st.isDirectory()) walk(r);
      else if (st.isFile()) out.push({ path: r, mode: st.mode & 0o7777, size: st.size });
    }
  };
  walk("");
  return out;
}

/** When we run as root, give `path` to the owner of the data directory (the collector's user). */
export function matchOwner(path: string, dataDir: string): void {
  if (process.getuid?.() !== 0) return;
  const st = statSync(dataDir);
  if (st.uid !== 0 || st.gid !== 0) chownSync(path, st.uid, st.gid);
}

/**
 * Writes `data` to `dataDir/rel` atomically (temp file + rename) with `mode`; missing parent folders are
 * created 0700. Everything created belongs to the data directory's owner.
 */
export function writeDataFile(dataDir: string, rel: string, data: Uint8Array, mode: number): void {
  const target = join(dataDir, rel);
  const parts = rel.split("/").slice(0, -1);
  let dir = dataDir;
  for (const p of parts) {
    dir = join(dir, p);
    try {
      mkdirSync(dir, { mode: 0o700 });
      matchOwner(dir, dataDir);
    } catch (e) {
      if ((e as { code?: string }).code !== "EEXIST") throw e;
    }
  }
  const tmp = join(dirname(target), `.${rel.split("/").pop()}.restore-${process.pid}`);
  writeFileSync(tmp, data, { mode: mode & 0o777 });
  chmodSync(tmp, mode & 0o777);
  matchOwner(tmp, dataDir);
  renameSync(tmp, target);
}

/** Whether `dataDir/rel` exists with other content than `data`. */
export function differs(dataDir: string, rel: string, data: Uint8Array): boolean {
  try {
    return !readFileSync(join(dataDir, rel)).equals(data);
  } catch {
    return false;
  }
}
