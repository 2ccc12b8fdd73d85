/**
 * The whole collector in-process, with its real children (nats-server, embedded PostgreSQL): readiness,
 * health and metrics endpoints, restart of a killed child, and clean stop.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Collector } from "../src/app/collector.ts";
import { isAlive, startCollector, waitFor } from "./support/collector.ts";
import { tempDir } from "./support/tmp.ts";

let c: Collector & { base: string };

beforeAll(async () => {
  c = await startCollector();
});
afterAll(async () => {
  await c?.stop();
});

async function ready(): Promise<number> {
  return (await fetch(`${c.base}/ready`)).status;
}

function metricValue(text: string, name: string, labels: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(" ").at(-1)) : Number.NaN;
}

describe("collector", () => {
  test("/health and /ready answer 200 once started; request ids are echoed", async () => {
    const h = await fetch(`${c.base}/health`, { headers: { "x-request-id": "abc-123" } });
    expect(h.status).toBe(200);
    expect(h.headers.get("x-request-id")).toBe("abc-123");
    expect(await h.json()).toEqual({ status: "ok" });
    const r = await fetch(`${c.base}/ready`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: "ready" });
    const generated = (await fetch(`${c.base}/health`)).headers.get("x-request-id");
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("unknown routes get a JSON 404 envelope", async () => {
    const r = await fetch(`${c.base}/nope`);
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({
      status: "error",
      errorType: "NOT_FOUND",
      error: "no route for GET /nope",
    });
  });

  test("/metrics is valid Prometheus text (promtool check metrics)", async () => {
    const res = await fetch(`${c.base}/metrics`);
    expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
    const text = await res.text();
    expect(metricValue(text, "secumon_child_up", 'child="nats"')).toBe(1);
    expect(metricValue(text, "secumon_child_up", 'child="postgres"')).toBe(1);
    expect(metricValue(text, "secumon_role_up", 'role="api"')).toBe(1);
    expect(text).toContain("process_resident_memory_bytes");
    const file = join(tempDir(), "metrics.txt");
    writeFileSync(file, text);
    const p = Bun.spawnSync(["sh", "-c", `promtool check metrics < ${file}`]);
    expect(p.stdout.toString() + p.stderr.toString()).toBe("");
    expect(p.exitCode).toBe(0);
  });

  for (const child of ["nats", "postgres"]) {
    test(`kill -9 of ${child}: /ready goes 503, the supervisor restarts it, /ready 200, restart counted`, async () => {
      const before = c.children.get(child)!;
      const pid = before.pid!;
      expect(isAlive(pid)).toBe(true);
      process.kill(pid, "SIGKILL");
      const body = await waitFor(
        async () => {
          const r = await fetch(`${c.base}/ready`);
          return r.status === 503 ? ((await r.json()) as { reasons: string[] }) : undefined;
        },
        5000,
        "/ready to answer 503",
      );
      expect(body.reasons.join(" ")).toContain(child);
      await waitFor(async () => (await ready()) === 200, 30_000, "/ready to answer 200 again");
      expect(c.children.get(child)!.pid).not.toBe(pid);
      const text = await (await fetch(`${c.base}/metrics`)).text();
      expect(metricValue(text, "secumon_child_restarts_total", `child="${child}"`)).toBe(1);
      if (child === "postgres") {
        // the API's pooled connections died with the server: the first requests after it is back are answered
        // (a sign-in looks the user up: 401 for an unknown one), not 503
        for (let i = 0; i < 5; i++) {
          const r = await fetch(`${c.base}/api/v1/auth/login`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ email: `nobody${i}@example.test`, password: "not the password" }),
          });
          expect(r.status).toBe(401);
        }
      }
    });
  }

  test("stop ends every child process, and stopping twice is safe", async () => {
    const pids = [...c.children.values()].map((ch) => ch.pid!);
    expect(pids.length).toBe(2);
    await c.stop();
    await c.stop();
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    await expect(fetch(`${c.base}/health`)).rejects.toThrow();
  });
});
