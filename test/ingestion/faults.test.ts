/**
 * Nothing lost, nothing doubled — with simulated agents streaming continuously through the real gateway:
 * kill -9 an ingestion worker, restart nats-server, stop PostgreSQL and start it again, fill the stream to its
 * limit. Afterwards the rows in the database equal, exactly, the samples the gateway acknowledged.
 * This is the short version (seconds per fault); `make soak-ingest` runs the same scenario with SECUMON_TEST_SOAK=1:
 * minute-long outages and a longer steady state.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { waitFor } from "../support/collector.ts";
import { type Rig, startRig } from "./fault-rig.ts";

const SOAK = process.env.SECUMON_TEST_SOAK === "1";
const P = SOAK
  ? {
      steadyMs: 30_000,
      pgDownMs: 60_000,
      natsDownMs: 5_000,
      fillTimeoutMs: 120_000,
      headroom: 4 * 1024 * 1024,
      rate: 60,
    }
  : {
      steadyMs: 2_500,
      pgDownMs: 5_000,
      natsDownMs: 1_000,
      fillTimeoutMs: 30_000,
      headroom: 512 * 1024,
      rate: 40,
    };
const STREAM_MAX_BYTES = 256 * 1024 * 1024;

let rig: Rig;
const log = (msg: string, extra: object = {}) =>
  process.env.SECUMON_TEST_VERBOSE && console.log(JSON.stringify({ msg, ...extra, ...rig.stats }));

beforeAll(async () => {
  rig = await startRig({ agents: 4, rate: P.rate, samplesPerBatch: 100, streamMaxBytes: STREAM_MAX_BYTES });
}, 120_000);
afterAll(async () => {
  await rig?.close();
}, 60_000);

test(
  "kill -9 a worker, restart NATS, stop PostgreSQL, fill the stream: rows == acknowledged samples, exactly",
  async () => {
    const acked = () => rig.stats.ackedSamples.metrics ?? 0;
    const watch = process.env.SECUMON_TEST_VERBOSE
      ? setInterval(async () => {
          const sb = await rig.streamBytes().catch(() => null);
          const rows = await rig.rows().catch(() => -1);
          console.log(
            JSON.stringify({
              t: Date.now() % 100000,
              acked: rig.stats.acked,
              sent: rig.stats.sent,
              retried: rig.stats.retried,
              streamErrors: rig.stats.streamErrors,
              last: rig.stats.lastError,
              pending: rig.pending(),
              msgs: sb?.messages,
              rows,
            }),
          );
        }, 1000)
      : null;
    const first = await rig.startWorker();
    rig.produce(true);
    await waitFor(async () => (await rig.rows()) > 0, 90_000, "the first rows"); // worker processes start slowly on a loaded machine
    await Bun.sleep(P.steadyMs);

    // 1. kill -9 a worker in the middle of its work; two others take over the shared durable consumers
    first.kill("SIGKILL");
    await first.exited;
    await Promise.all([rig.startWorker(), rig.startWorker()]);
    await Bun.sleep(P.steadyMs);
    log("after kill -9");

    // 2. restart nats-server (gateway and workers reconnect; unacked batches are redelivered)
    await rig.nats.child.stop();
    await Bun.sleep(P.natsDownMs);
    await rig.nats.child.start();
    await Bun.sleep(P.steadyMs);
    log("after nats restart");

    // 3. stop PostgreSQL, keep streaming, start it again
    const before = await rig.rows();
    await rig.pg.stop();
    await Bun.sleep(P.pgDownMs);
    await rig.pg.start();
    await waitFor(
      async () => (await rig.rows()) > before,
      60_000,
      "rows to move again after PostgreSQL is back",
    );
    log("after postgres outage");

    // 4. fill the streams to their limit: with no worker running nothing is consumed, so lowering each shard's
    //    max_bytes to a little above what it holds fills it. The gateway must then push back and agents keep
    //    their batches; once the limits are back (the operator's fix), everything pending arrives, once.
    for (const w of rig.workers) w.kill("SIGTERM");
    await Promise.all(rig.workers.map((w) => w.exited));
    const held = await rig.streamBytes();
    await rig.fillStreams(P.headroom);
    const retried = rig.stats.retried;
    await waitFor(
      async () => rig.stats.retried > retried + 5,
      P.fillTimeoutMs,
      "the gateway to push back on a full stream",
    );
    const full = await rig.streamBytes();
    // batches went into the headroom, and no shard took more than its limit (a shard refuses the batch that
    // would cross it, so one that pushes back holds its limit less at most one batch)
    expect(full.bytes).toBeGreaterThan(held.bytes);
    expect(full.bytes).toBeLessThanOrEqual(held.bytes + rig.shards * P.headroom);
    await Bun.sleep(P.steadyMs);
    await rig.restoreStreamLimits();
    await rig.startWorker();
    await Bun.sleep(P.steadyMs);
    log("after full stream");

    // drain: stop producing, let agents resend until everything is acknowledged, let workers catch up
    rig.produce(false);
    await waitFor(async () => rig.pending() === 0, 120_000, "every batch to be acknowledged");
    await waitFor(async () => (await rig.rows()) >= acked(), 120_000, "the workers to catch up");
    await Bun.sleep(1000); // a late duplicate would show up now
    const rows = await rig.rows();
    log("done", { rows });
    if (watch) clearInterval(watch);
    expect(rig.stats.rejected).toBe(0);
    expect(acked()).toBeGreaterThan(0);
    expect(rows).toBe(acked());
    const [ledger] = await rig.sql<{ n: number; d: number }[]>`
      select count(*)::int as n, count(distinct (source_id, batch_id))::int as d from ingested_batches`;
    expect(ledger?.n).toBe(ledger?.d);
    expect(ledger?.n).toBe(rig.stats.acked);
  },
  SOAK ? 1_800_000 : 240_000,
);
