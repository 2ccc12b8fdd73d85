/**
 * What PostgreSQL did during a benchmark phase (bench/ingest.ts): WAL and checkpoint counters (pg_stat_wal,
 * pg_stat_bgwriter), the wait events of the writing backends sampled every 200 ms, and the CPU seconds of the
 * cluster split by process type (client backends, walwriter, checkpointer, autovacuum…) read from /proc.
 * CPU of children that exit inside the window (autovacuum workers) is counted through the postmaster's
 * cutime/cstime once it has reaped them.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { Sql } from "../src/storage/db.ts";

interface PgCounters {
  walRecords: number;
  walFpi: number;
  walBytes: number;
  walWrite: number;
  walSync: number;
  walBuffersFull: number;
  checkpointsTimed: number;
  checkpointsReq: number;
  buffersCheckpoint: number;
  buffersBackend: number;
  buffersBackendFsync: number;
}

async function counters(sql: Sql): Promise<PgCounters> {
  const [w] = await sql<Record<string, string>[]>`
    select wal_records::text, wal_fpi::text, wal_bytes::text, wal_write::text, wal_sync::text, wal_buffers_full::text,
           checkpoints_timed::text, checkpoints_req::text, buffers_checkpoint::text, buffers_backend::text,
           buffers_backend_fsync::text
    from pg_stat_wal, pg_stat_bgwriter`;
  const n = (k: string) => Number(w?.[k] ?? 0);
  return {
    walRecords: n("wal_records"),
    walFpi: n("wal_fpi"),
    walBytes: n("wal_bytes"),
    walWrite: n("wal_write"),
    walSync: n("wal_sync"),
    walBuffersFull: n("wal_buffers_full"),
    checkpointsTimed: n("checkpoints_timed"),
    checkpointsReq: n("checkpoints_req"),
    buffersCheckpoint: n("buffers_checkpoint"),
    buffersBackend: n("buffers_backend"),
    buffersBackendFsync: n("buffers_backend_fsync"),
  };
}

function stat(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** CPU seconds per process type of the cluster whose postmaster is `pmPid`. */
export function pgCpu(pmPid: number): Record<string, number> {
  const out: Record<string, number> = {};
  const pm = stat(pmPid);
  if (!pm) return out;
  // the postmaster's own time plus what its reaped children used
  out.postmaster_and_exited = (Number(pm[11]) + Number(pm[12]) + Number(pm[13]) + Number(pm[14])) / 100;
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const f = stat(Number(d));
    if (!f || Number(f[1]) !== pmPid) continue;
    let name = "other";
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8").replace(/\0/g, " ");
      if (/^postgres: \S+ \S+ \[local\]/.test(cmd)) name = "client";
      else if (/autovacuum worker/.test(cmd)) name = "autovacuum";
      else if (/walwriter/.test(cmd)) name = "walwriter";
      else if (/checkpointer/.test(cmd)) name = "checkpointer";
      else if (/background writer/.test(cmd)) name = "bgwriter";
      else
        name =
          cmd
            .replace(/^postgres: /, "")
            .trim()
            .replace(/\s+/g, "_") || "other";
    } catch {}
    out[name] = (out[name] ?? 0) + (Number(f[11]) + Number(f[12])) / 100;
  }
  return out;
}

export interface PgWindow {
  /** Stops sampling; returns the report lines for `rows` rows written over the window. */
  end(rows: number): Promise<string[]>;
  /** CPU seconds the whole cluster used so far in this window. */
  cpuSeconds(): number;
}

/** Starts a measurement window on the cluster reachable through `sql` (postmaster pid `pmPid`). */
export async function pgWindow(sql: Sql, pmPid: number, sampleWaits = true): Promise<PgWindow> {
  const c0 = await counters(sql);
  const cpu0 = pgCpu(pmPid);
  const t0 = performance.now();
  const waits = new Map<string, number>();
  let samples = 0;
  let busy = false;
  const timer = sampleWaits
    ? setInterval(() => {
        if (busy) return;
        busy = true;
        sql<{ w: string }[]>`
          select coalesce(wait_event_type || ':' || wait_event, 'CPU') as w from pg_stat_activity
          where backend_type = 'client backend' and state = 'active' and pid <> pg_backend_pid()`
          .then(
            (rows) => {
              samples++;
              for (const r of rows) waits.set(r.w, (waits.get(r.w) ?? 0) + 1);
            },
            () => {},
          )
          .finally(() => {
            busy = false;
          });
      }, 200)
    : null;
  const total = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
  return {
    cpuSeconds: () => total(pgCpu(pmPid)) - total(cpu0),
    async end(rows) {
      if (timer) clearInterval(timer);
      const secs = (performance.now() - t0) / 1000;
      const c1 = await counters(sql);
      const cpu1 = pgCpu(pmPid);
      const d = (k: keyof PgCounters) => c1[k] - c0[k];
      const cpu: Record<string, number> = {};
      for (const k of new Set([...Object.keys(cpu0), ...Object.keys(cpu1)])) {
        const v = (cpu1[k] ?? 0) - (cpu0[k] ?? 0);
        if (Math.abs(v) >= 0.01) cpu[k] = Math.round((v / secs) * 100);
      }
      const cpuTotal = total(cpu1) - total(cpu0);
      const per = Math.max(1, rows);
      const lines = [
        `  postgres: ${Math.round(rows / secs)} rows/s, CPU ${Math.round((cpuTotal / secs) * 100)} % of a core ` +
          `(${((cpuTotal / per) * 1e6).toFixed(1)} µs per row) by process: ${JSON.stringify(cpu)}`,
        `  WAL: ${(d("walBytes") / per).toFixed(0)} bytes/row, ${(d("walBytes") / secs / 2 ** 20).toFixed(1)} MiB/s, ` +
          `${(d("walFpi") / secs).toFixed(0)} full-page images/s (${((d("walFpi") / Math.max(1, d("walRecords"))) * 100).toFixed(2)} % of records), ` +
          `${(d("walWrite") / secs).toFixed(0)} writes/s, ${(d("walSync") / secs).toFixed(0)} fsyncs/s, wal_buffers full ${d("walBuffersFull")} times; ` +
          `checkpoints ${d("checkpointsTimed")} timed + ${d("checkpointsReq")} requested, buffers written by checkpointer ${d("buffersCheckpoint")}, ` +
          `by backends ${d("buffersBackend")} (fsyncs by backends ${d("buffersBackendFsync")})`,
      ];
      if (samples > 0) {
        const top = [...waits.entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 8)
          .map(([k, v]) => `${k} ${(v / samples).toFixed(2)}`);
        lines.push(
          `  active client backends by wait event (mean over ${samples} samples): ${top.join(", ")}`,
        );
      }
      return lines;
    },
  };
}
