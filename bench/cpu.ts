/**
 * CPU time of processes from /proc/<pid>/stat (user + system, every thread), for benchmarks that print where
 * a request's time goes: the API's own process, PostgreSQL's backends and the load generator.
 */
import { readFileSync } from "node:fs";

const TICK_MS = 10; // CLK_TCK is 100 on Linux

/** CPU milliseconds used so far by `pid` (0 once it has exited). */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // fields after the command name, which is in parentheses and may hold spaces
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * TICK_MS; // utime, stime (fields 14 and 15)
  } catch {
    return 0;
  }
}

/** CPU milliseconds of several processes, by pid; `delta` subtracts an earlier sample. */
export function sample(pids: Iterable<number>): Map<number, number> {
  return new Map([...pids].map((p) => [p, cpuMs(p)]));
}

export function delta(before: Map<number, number>, after: Map<number, number>): number {
  let ms = 0;
  for (const [p, v] of after) ms += Math.max(0, v - (before.get(p) ?? 0));
  return ms;
}

/** The whole machine's busy and total CPU milliseconds so far (from /proc/stat), to see what else ran. */
export function machineMs(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: (total - idle) * TICK_MS, total: total * TICK_MS };
}
