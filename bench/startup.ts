/**
 * make bench-startup: cold start (first run, includes initdb) and warm start of the compiled binary to
 * /ready, binary size, and idle memory (RSS of the collector and of its children).
 * Goals (issue #2): warm start ≤ 3 s, idle RSS of the collector process ≤ 150 MiB.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../src/supervisor/ports.ts";
import { printMachine, result } from "./machine.ts";

const binary = join(import.meta.dir, "../dist/secumon-collector");
const dataDir = mkdtempSync(join(tmpdir(), "secumon-bench-"));
Bun.spawnSync(["chmod", "755", dataDir]);
const apiPort = freePort();
const env = {
  ...process.env,
  SECUMON_API__PORT: String(apiPort),
  SECUMON_NATS__PORT: String(freePort()),
  SECUMON_GATEWAY__GRPC_PORT: String(freePort()),
  SECUMON_DATABASE__EMBEDDED__PORT: String(freePort()),
  SECUMON_LOGGING__LEVEL: "warn",
};

async function startToReady(): Promise<{ proc: ReturnType<typeof Bun.spawn>; seconds: number }> {
  const t0 = performance.now();
  const proc = Bun.spawn([binary, "serve", "--data-dir", dataDir], {
    env,
    stdout: "ignore",
    stderr: "inherit",
  });
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${apiPort}/ready`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (proc.exitCode !== null) throw new Error(`collector exited with ${proc.exitCode} before ready`);
    await Bun.sleep(20);
  }
  return { proc, seconds: (performance.now() - t0) / 1000 };
}

async function stop(proc: ReturnType<typeof Bun.spawn>): Promise<void> {
  proc.kill("SIGTERM");
  await proc.exited;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(d), ...descendants(Number(d)));
    } catch {
      // process went away
    }
  }
  return out;
}

printMachine();
const binaryMiB = statSync(binary).size / 2 ** 20;
const cold = await startToReady();
console.log(`cold start (initdb + first start): ${cold.seconds.toFixed(2)} s`);
await stop(cold.proc);

const warm: number[] = [];
let idleSelf = 0;
let idleChildren = 0;
for (let i = 0; i < 3; i++) {
  const w = await startToReady();
  warm.push(w.seconds);
  if (i === 2) {
    await Bun.sleep(5000);
    idleSelf = rssMiB(w.proc.pid);
    idleChildren = descendants(w.proc.pid).reduce((s, p) => s + rssMiB(p), 0);
  }
  await stop(w.proc);
}
warm.sort((a, b) => a - b);
const warmMedian = warm[1]!;
console.log(
  `warm start to /ready: ${warm.map((w) => w.toFixed(2)).join(", ")} s (median ${warmMedian.toFixed(2)})`,
);
console.log(`idle RSS: collector ${idleSelf.toFixed(1)} MiB, children ${idleChildren.toFixed(1)} MiB`);
console.log(`binary: ${binaryMiB.toFixed(1)} MiB`);
rmSync(dataDir, { recursive: true, force: true });
result({
  cold_start_s: cold.seconds.toFixed(2),
  warm_start_s: warmMedian.toFixed(2),
  idle_rss_mib: idleSelf.toFixed(1),
  children_rss_mib: idleChildren.toFixed(1),
  binary_mib: binaryMiB.toFixed(1),
});
