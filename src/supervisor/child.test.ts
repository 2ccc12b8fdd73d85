/** SupervisedChild with small shell children: readiness, start failures, restart with backoff, stop deadline. */
import { describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../test/support/tmp.ts";
import { silentLogger } from "../observability/logger.ts";
import { restartDelay, SupervisedChild } from "./child.ts";

const policy = { initialMs: 50, maxMs: 400, resetAfterMs: 60_000 };

function child(script: string, probe: () => Promise<boolean>, extra: { stopSignal?: "SIGTERM" } = {}) {
  return new SupervisedChild(
    {
      name: "test-child",
      argv: ["/bin/sh", "-c", script],
      stopSignal: extra.stopSignal ?? "SIGTERM",
      probe,
      startTimeoutMs: 3000,
    },
    policy,
    silentLogger(),
    { onRestart: () => restarts.push(Date.now()) },
  );
}
let restarts: number[] = [];

describe("SupervisedChild", () => {
  test("start waits for the probe; readiness is null once running; stop ends the process", async () => {
    const dir = tempDir();
    const flag = join(dir, "up");
    const c = child(`sleep 0.3; touch ${flag}; exec sleep 60`, async () => existsSync(flag));
    expect(c.readiness()).toBe("test-child: not started");
    await c.start();
    expect(c.readiness()).toBeNull();
    const pid = c.pid!;
    await c.stop();
    await c.stop();
    expect(() => process.kill(pid, 0)).toThrow();
    expect(c.readiness()).toBe("test-child: stopped");
  });

  test("a child that exits while starting fails start with its last output", async () => {
    const c = child("echo 'FATAL: bad things' >&2; exit 3", async () => false);
    await expect(c.start()).rejects.toThrow(
      /exited with status 3 while starting. Its last output:\n\s+FATAL: bad things/,
    );
  });

  test("a child that never becomes ready is killed and start fails", async () => {
    const c = new SupervisedChild(
      {
        name: "slow",
        argv: ["/bin/sh", "-c", "exec sleep 60"],
        stopSignal: "SIGTERM",
        probe: async () => false,
        startTimeoutMs: 400,
      },
      policy,
      silentLogger(),
    );
    await expect(c.start()).rejects.toThrow("slow did not become ready within 400 ms");
  });

  test("a dying child is restarted with growing delays, and readiness says why meanwhile", async () => {
    restarts = [];
    const dir = tempDir();
    const counter = join(dir, "count");
    writeFileSync(counter, "");
    // each run: record itself, serve briefly, then die
    const c = child(`echo x >> ${counter}; sleep 0.2; exit 1`, async () => true);
    await c.start();
    await Bun.sleep(150);
    await Bun.sleep(100);
    expect(c.readiness()).toMatch(/test-child: (exited with status 1; restarting|starting|running)/);
    await Bun.sleep(1500);
    await c.stop();
    expect(restarts.length).toBeGreaterThanOrEqual(3);
    expect(c.restartCount).toBe(restarts.length);
  });

  test("restart delays double from the initial delay up to the maximum", () => {
    expect([0, 1, 2, 3, 4, 5, 40].map((n) => restartDelay(n, policy))).toEqual([
      50, 100, 200, 400, 400, 400, 400,
    ]);
  });

  test("a child ignoring the stop signal is killed after the grace period", async () => {
    const c = new SupervisedChild(
      {
        name: "stubborn",
        argv: ["/bin/sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"],
        stopSignal: "SIGTERM",
        probe: async () => true,
        startTimeoutMs: 3000,
        killAfterMs: 300,
      },
      policy,
      silentLogger(),
    );
    await c.start();
    const pid = c.pid!;
    await c.stop();
    expect(() => process.kill(pid, 0)).toThrow(); // SIGTERM alone would never have ended it
  });
});
