/**
 * ingestion.flush_interval: with a linger, a writer that finds fewer than batch_size batches queued waits for a
 * full group (or for the oldest batch to have waited flush_interval) and writes them in one transaction; a lone
 * batch is still written once its wait is over. Observed through secumon_ingest_group_batches.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { waitFor } from "../support/collector.ts";
import { countRows, type Harness, harness, publish } from "./harness.ts";

let h: Harness;

beforeAll(async () => {
  h = await harness({ ingestion: { batch_size: 5, concurrency: 2, flush_interval: "3s" } });
}, 60_000);
afterAll(async () => {
  await h?.close();
}, 30_000);

function groups(): { count: number; sum: number } {
  const text = h.metrics.render();
  const read = (suffix: string) => {
    const line = text
      .split("\n")
      .find((l) => l.startsWith(`secumon_ingest_group_batches_${suffix}{kind="metrics"}`));
    return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
  };
  return { count: read("count"), sum: read("sum") };
}

const batch = (cpu: number) => ({ system: [{ time_unix_ms: Date.now(), cpu_usage: cpu }] });
const rowsAt = (cpu: number) =>
  countRows(h.sql, "system_metrics", h.sql`agent_id = ${h.f.agent} and cpu_usage = ${cpu}`);

test("batches arriving within flush_interval are written as one group of batch_size", async () => {
  await Promise.all(
    [1, 2, 3, 4, 5].map(() =>
      publish(h.js, { kind: "metrics", tenant: h.f.tenant, source: h.f.agent, payload: batch(71) }),
    ),
  );
  await waitFor(async () => (await rowsAt(71)) === 5, 15_000, "5 rows");
  expect(groups()).toEqual({ count: 1, sum: 5 });
});

test("a lone batch is written once it has waited flush_interval", async () => {
  await publish(h.js, { kind: "metrics", tenant: h.f.tenant, source: h.f.agent, payload: batch(72) });
  await waitFor(async () => (await rowsAt(72)) === 1, 15_000, "the lone batch's row");
  expect(groups()).toEqual({ count: 2, sum: 6 });
});
