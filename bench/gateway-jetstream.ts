/**
 * bun bench/gateway-jetstream.ts: the JetStream store path alone (no gateway, no gRPC), to see what bounds the
 * gateway's batches/s with `sync_interval: always`. A nats-server of its own (sync always) and real lz4 payloads
 * of 500 metrics samples; for SECONDS each (default 5), INFLIGHT publishes (default 64) kept in flight by:
 *   single  — one stream, one publish per batch (what the gateway does);
 *   atomic  — one stream with allow_atomic, ATOMIC (default 8) batches per nats-server 2.12 atomic batch
 *             (Nats-Batch-Id / -Sequence / -Commit, through nats.js startBatch);
 *   sharded — SHARDS streams (default 4), each batch to the stream of its source.
 * For each: batches/s, and fsync+fdatasync calls per stored batch counted on the nats-server with strace -f -c
 * (when strace is installed; it slows the server, so the rate is measured in a separate run without it).
 * Prints the disk's single-writer fdatasync rate. RESULT single_per_s=… atomic_per_s=… sharded_per_s=…
 *   single_fsync_per_batch=… atomic_fsync_per_batch=… sharded_fsync_per_batch=… fsync_per_s=… load1=…
 */
import { spawn, spawnSync } from "node:child_process";
import { loadavg } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import { compress } from "../src/protocol/compression.ts";
import { makePayload, simHost } from "../src/simulator/data.ts";
import { privateNats } from "../test/support/nats.ts";
import { removeTempDirs } from "../test/support/tmp.ts";
import { fsyncRate, printMachine, result } from "./machine.ts";

const SECONDS = Number(process.env.SECONDS ?? 5);
const INFLIGHT = Number(process.env.INFLIGHT ?? 64);
const ATOMIC = Number(process.env.ATOMIC ?? 8);
const SHARDS = Number(process.env.SHARDS ?? 4);

printMachine();
const payloads = Array.from({ length: 16 }, (_, i) =>
  compress("lz4", makePayload("metrics", simHost(i), 500).bytes),
);
console.log(`payload: lz4 batch of 500 metrics samples, ${payloads[0]!.byteLength} bytes`);

const { child: nats, url: natsServerUrl, dataDir } = await privateNats();
const nc = await connect({ servers: natsServerUrl });
const js = jetstream(nc);
const jsm = await jetstreamManager(nc);

const hasStrace = spawnSync("strace", ["-V"]).status === 0;

/** Runs `fn` (which returns batches stored) under strace -c on nats-server: fsync-family calls counted. */
async function withSyncCount(fn: () => Promise<number>): Promise<{ batches: number; syncs: number }> {
  if (!hasStrace || !nats.pid) return { batches: await fn(), syncs: Number.NaN };
  const st = spawn(
    "strace",
    ["-f", "-c", "-e", "trace=fsync,fdatasync,sync_file_range", "-p", String(nats.pid)],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let out = "";
  st.stderr.on("data", (b) => {
    out += String(b);
  });
  await Bun.sleep(500); // attached
  const batches = await fn();
  st.kill("SIGINT");
  await new Promise((r) => st.on("close", r));
  let syncs = 0;
  for (const m of out.matchAll(
    /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync|sync_file_range)$/gm,
  ))
    syncs += Number(m[1]);
  return { batches, syncs };
}

let seq = 0;
const nextId = () => `b${++seq}`;

/** INFLIGHT loops each publishing one batch at a time to subject(i) for `secs`. */
async function runSingle(subject: (i: number) => string, secs: number): Promise<number> {
  let done = 0;
  const until = performance.now() + secs * 1000;
  await Promise.all(
    Array.from({ length: INFLIGHT }, async (_, i) => {
      while (performance.now() < until) {
        const h = headers();
        h.set("Nats-Msg-Id", nextId());
        await js.publish(subject(i), payloads[done % payloads.length]!, { headers: h });
        done++;
      }
    }),
  );
  return done;
}

async function runAtomic(secs: number): Promise<number> {
  let done = 0;
  const until = performance.now() + secs * 1000;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.floor(INFLIGHT / ATOMIC)) }, async (_, i) => {
      const subj = `secumon.metrics.t.src${i}`;
      while (performance.now() < until) {
        const h0 = headers();
        h0.set("Nats-Msg-Id", nextId());
        const b = await js.startBatch(subj, payloads[0]!, { headers: h0 });
        for (let k = 1; k < ATOMIC - 1; k++) {
          const h = headers();
          h.set("Nats-Msg-Id", nextId());
          b.add(subj, payloads[k % payloads.length]!, { headers: h });
        }
        const hc = headers();
        hc.set("Nats-Msg-Id", nextId());
        await b.commit(subj, payloads[1]!, { headers: hc });
        done += ATOMIC;
      }
    }),
  );
  return done;
}

async function stream(name: string, subjects: string[], atomic = false): Promise<void> {
  await jsm.streams.add({ name, subjects, max_age: 3600 * 1e9, ...(atomic ? { allow_atomic: true } : {}) });
}
async function drop(name: string): Promise<void> {
  await jsm.streams.delete(name).catch(() => {});
}

const fsyncPerS = fsyncRate(join(dataDir, "nats"));
console.log(
  `disk: ${fsyncPerS} fdatasync/s (16 KiB appends, one writer); strace ${hasStrace ? "yes" : "no"}`,
);

async function measure(
  label: string,
  setup: () => Promise<void>,
  teardown: () => Promise<void>,
  run: (secs: number) => Promise<number>,
): Promise<{ perS: number; perBatch: number }> {
  await setup();
  await run(1); // warm-up
  const t0 = performance.now();
  const n = await run(SECONDS);
  const perS = Math.round(n / ((performance.now() - t0) / 1000));
  await teardown();
  await setup();
  const c = await withSyncCount(() => run(2));
  await teardown();
  const perBatch = c.syncs / c.batches;
  console.log(
    `${label}: ${perS} batches/s; ${Number.isNaN(perBatch) ? "?" : perBatch.toFixed(2)} fsync per stored batch (${c.syncs} for ${c.batches})`,
  );
  return { perS, perBatch };
}

const single = await measure(
  "single stream",
  () => stream("S", ["secumon.>"]),
  () => drop("S"),
  (s) => runSingle((i) => `secumon.metrics.t.src${i}`, s),
);
const atomic = await measure(
  `atomic batches of ${ATOMIC}`,
  () => stream("A", ["secumon.>"], true),
  () => drop("A"),
  (s) => runAtomic(s),
);
const shardNames = Array.from({ length: SHARDS }, (_, k) => `SH${k}`);
const sharded = await measure(
  `${SHARDS} streams`,
  async () => {
    for (const [k, n] of shardNames.entries()) await stream(n, [`shard${k}.>`]);
  },
  async () => {
    for (const n of shardNames) await drop(n);
  },
  (s) => runSingle((i) => `shard${i % SHARDS}.metrics.t.src${i}`, s),
);

await nc.close();
await nats.stop();
removeTempDirs();
const f = (x: number) => (Number.isNaN(x) ? "na" : x.toFixed(2));
result({
  single_per_s: single.perS,
  atomic_per_s: atomic.perS,
  sharded_per_s: sharded.perS,
  single_fsync_per_batch: f(single.perBatch),
  atomic_fsync_per_batch: f(atomic.perBatch),
  sharded_fsync_per_batch: f(sharded.perBatch),
  fsync_per_s: fsyncPerS,
  shards: SHARDS,
  inflight: INFLIGHT,
  load1: loadavg()[0]?.toFixed(2) ?? "?",
});
process.exit(0);
