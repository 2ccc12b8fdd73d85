import { describe, expect, test } from "bun:test";
import { silentLogger } from "../observability/logger.ts";
import { Group, type Service, withTimeout } from "./lifecycle.ts";

function svc(
  name: string,
  log: string[],
  opts: { failStart?: boolean; stopMs?: number; failStop?: boolean } = {},
): Service {
  return {
    name,
    async start() {
      log.push(`start ${name}`);
      if (opts.failStart) throw new Error(`${name} cannot start`);
    },
    async stop() {
      log.push(`stop ${name}`);
      if (opts.stopMs) await Bun.sleep(opts.stopMs);
      if (opts.failStop) throw new Error(`${name} cannot stop`);
    },
  };
}

describe("Group", () => {
  test("stops in reverse start order", async () => {
    const log: string[] = [];
    const g = new Group(silentLogger(), 1000);
    await g.start(svc("a", log));
    await g.start(svc("b", log));
    await g.start(svc("c", log));
    await g.stop();
    expect(log).toEqual(["start a", "start b", "start c", "stop c", "stop b", "stop a"]);
  });

  test("a failed start stops the failed service and rolls back what started, then rethrows", async () => {
    const log: string[] = [];
    const g = new Group(silentLogger(), 1000);
    await g.start(svc("a", log));
    await expect(g.start(svc("b", log, { failStart: true }))).rejects.toThrow("b cannot start");
    expect(log).toEqual(["start a", "start b", "stop b", "stop a"]);
  });

  test("stop is idempotent: a second call neither stops twice nor fails", async () => {
    const log: string[] = [];
    const g = new Group(silentLogger(), 1000);
    await g.start(svc("a", log));
    await Promise.all([g.stop(), g.stop()]);
    await g.stop();
    expect(log.filter((l) => l === "stop a").length).toBe(1);
  });

  test("shutdown is bounded by the deadline; the others still stop; errors are joined", async () => {
    const log: string[] = [];
    const g = new Group(silentLogger(), 300);
    await g.start(svc("a", log, { failStop: true }));
    await g.start(svc("slow", log, { stopMs: 5000 }));
    const err = await g.stop().catch((e) => e);
    expect(err).toBeInstanceOf(AggregateError);
    expect((err as AggregateError).errors.map(String)).toEqual([
      "Error: slow did not stop within 300 ms",
      "Error: a cannot stop",
    ]);
    expect(log).toContain("stop a");
  });

  test("withTimeout resolves with the value or rejects with the message", async () => {
    expect(await withTimeout(Promise.resolve(7), 100, "x")).toBe(7);
    await expect(withTimeout(Bun.sleep(500), 20, "too slow")).rejects.toThrow("too slow");
  });
});
