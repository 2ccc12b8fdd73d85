/**
 * The compiled executable (make build): runs from an empty directory with no node_modules or source tree,
 * becomes ready, stops on SIGTERM leaving no child behind, and takes its children with it when killed -9.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../src/supervisor/ports.ts";
import { ROOT } from "./support/cli.ts";
import { isAlive, waitFor } from "./support/collector.ts";
import { tempDir } from "./support/tmp.ts";

const built = join(ROOT, "dist/secumon-collector");

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid)
        out.push(Number(d), ...childrenOf(Number(d)));
    } catch {
      // gone
    }
  }
  return out;
}

async function launch(opts: { ownGroup?: boolean } = {}) {
  const dir = tempDir("secumon-bin-");
  const bin = join(dir, "secumon-collector");
  copyFileSync(built, bin);
  Bun.spawnSync(["chmod", "755", bin]);
  const port = freePort();
  // with ownGroup, the collector leads its own process group, like a command started from a terminal
  const argv = [bin, "serve", "--data-dir", join(dir, "data")];
  const proc = Bun.spawn(opts.ownGroup ? ["/usr/bin/setsid", ...argv] : argv, {
    cwd: dir,
    env: {
      PATH: "/usr/bin:/bin",
      SECUMON_API__PORT: String(port),
      SECUMON_NATS__PORT: String(freePort()),
      SECUMON_GATEWAY__GRPC_PORT: String(freePort()),
      SECUMON_DATABASE__EMBEDDED__PORT: String(freePort()),
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  await waitFor(
    async () => proc.exitCode === null && (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200,
    60_000,
    "the compiled collector to be ready",
  );
  const kids = childrenOf(proc.pid);
  return { proc, port, kids, dir };
}

describe("compiled binary", () => {
  beforeAll(() => {
    if (!existsSync(built))
      throw new Error("dist/secumon-collector is missing: run `make build` (make test does)");
  });

  test("runs from an empty directory, is ready, logs JSON, and SIGTERM leaves no child", async () => {
    const { proc, kids, dir } = await launch();
    expect(existsSync(join(dir, "node_modules"))).toBe(false);
    expect(kids.length).toBeGreaterThanOrEqual(2); // nats-server, postgres (+ its backends)
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    for (const pid of kids) expect(isAlive(pid)).toBe(false);
    const out = await new Response(proc.stdout).text();
    const lines = out.trim().split("\n");
    for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
    expect(lines.some((l) => JSON.parse(l).msg?.startsWith("SecuMon Collector ready on http://"))).toBe(true);
  });

  test("Ctrl-C (SIGINT to the whole process group) stops everything in order, exit 0", async () => {
    const { proc, kids } = await launch({ ownGroup: true });
    process.kill(-proc.pid, "SIGINT");
    expect(await proc.exited).toBe(0);
    for (const pid of kids) expect(isAlive(pid)).toBe(false);
    const out = await new Response(proc.stdout).text();
    expect(out).not.toContain("exited unexpectedly");
    expect(out).toContain('"msg":"SecuMon Collector stopped"');
  });

  test("kill -9 of the collector: its children do not outlive it", async () => {
    const { proc, kids } = await launch();
    proc.kill("SIGKILL");
    await proc.exited;
    await waitFor(
      async () => kids.every((p) => !isAlive(p)),
      15_000,
      "children to exit after the parent died",
    );
  });
});
