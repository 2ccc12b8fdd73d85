/**
 * Log lines go to PostgreSQL and, when loki.url is set, to Loki's push API — here a local HTTP server speaking
 * it (POST /loki/api/v1/push, JSON streams). A failing Loki is retried; the lines are in PostgreSQL regardless.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { waitFor } from "../support/collector.ts";
import { countRows, type Harness, harness, publish } from "./harness.ts";

interface Push {
  streams: { stream: Record<string, string>; values: [string, string, Record<string, string>][] }[];
}
const pushes: Push[] = [];
let failures = 2;
const loki = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const url = new URL(req.url);
    if (req.method !== "POST" || url.pathname !== "/loki/api/v1/push")
      return new Response("not found", { status: 404 });
    if (req.headers.get("content-type") !== "application/json")
      return new Response("bad content type", { status: 400 });
    if (failures > 0) {
      failures--;
      return new Response("ingester unavailable", { status: 503 });
    }
    pushes.push((await req.json()) as Push);
    return new Response(null, { status: 204 });
  },
});

let h: Harness;
beforeAll(async () => {
  h = await harness({ loki: { url: `http://127.0.0.1:${loki.port}`, batch_wait: "100ms" } });
}, 60_000);
afterAll(async () => {
  await h?.close();
  loki.stop(true);
}, 30_000);

test("log lines are stored, searchable, and pushed to Loki after two failed attempts", async () => {
  const t = Date.now();
  await publish(h.js, {
    kind: "logs",
    tenant: h.f.tenant,
    source: h.f.agent,
    payload: {
      entries: [
        {
          time_unix_ms: t,
          level: 4,
          source: "sshd",
          message: "Failed password for root from 10.0.0.9",
          fields: { pid: "812" },
        },
        { time_unix_ms: t + 1, level: 2, source: "cron", message: "session opened for user backup" },
      ],
    },
  });
  await waitFor(
    async () => (await countRows(h.sql, "logs", h.sql`agent_id = ${h.f.agent}`)) === 2,
    10_000,
    "2 log rows",
  );
  const hits = await h.sql`select level, source from logs
    where tenant_id = ${h.f.tenant} and to_tsvector('simple', message) @@ websearch_to_tsquery('simple', 'failed password')`;
  expect([...hits]).toEqual([{ level: "warning", source: "sshd" }]);

  await waitFor(async () => pushes.length > 0, 15_000, "a successful push");
  expect(failures).toBe(0);
  const streams = pushes.flatMap((p) => p.streams);
  const lines = streams.flatMap((s) =>
    s.values.map((v) => ({ labels: s.stream, ts: v[0], line: v[1], meta: v[2] })),
  );
  expect(lines).toHaveLength(2);
  const warn = lines.find((l) => l.labels.level === "warning");
  expect(warn).toEqual({
    labels: { job: "secumon", tenant_id: h.f.tenant, agent_id: h.f.agent, level: "warning" },
    ts: `${BigInt(t) * 1_000_000n}`,
    line: "Failed password for root from 10.0.0.9",
    meta: { source: "sshd" },
  });
  const text = h.metrics.render();
  expect(text).toContain('secumon_loki_pushes_total{outcome="retry"} 2');
  expect(text).toContain('secumon_loki_pushes_total{outcome="ok"} 1');
});
