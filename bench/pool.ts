/**
 * make bench-pool: the cost of one pooled statement as the process ages (patches/postgres@3.4.9.patch).
 *   A pool of POOL (4) connections, all open, runs ROUNDS (10) × PER_ROUND (50,000) statements one at a time,
 *   so the pool always has idle connections and its idle queue never empties — the steady state of a
 *   collector whose load is below its pool size. Half are `select 1` on the pool, half a reserve() + release
 *   (the API's tenant reads reserve a connection). Prints µs per statement per round.
 *   postgres.js 3.4.9's queue kept every slot it had ever shifted out while it was never empty, and each move
 *   of a connection between queues searched the whole array: the cost grew with every query the process had
 *   ever run (measured 2026-12-07: +25 µs per reserve after 240,000; the array grows 8 bytes per query).
 * RESULT first_round_us=… last_round_us=… growth_pct=… statements=…
 */

import { silentLogger } from "../src/observability/logger.ts";
import { connect } from "../src/storage/db.ts";
import { emptyDatabase, stopTestCluster } from "../test/support/pg.ts";
import { removeTempDirs } from "../test/support/tmp.ts";
import { printMachine, result } from "./machine.ts";

const POOL = Number(process.env.POOL ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 10);
const PER_ROUND = Number(process.env.PER_ROUND ?? 50_000);

printMachine();
const sql = connect(await emptyDatabase(), { max: POOL, log: silentLogger() });
await Promise.all(Array.from({ length: POOL }, () => sql`select pg_sleep(0.05)`)); // every connection open
const perRound: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const t = performance.now();
  for (let i = 0; i < PER_ROUND / 2; i++) {
    await sql`select 1`;
    const r = await sql.reserve();
    r.release();
  }
  const us = ((performance.now() - t) / PER_ROUND) * 1000;
  perRound.push(us);
  console.log(`round ${round + 1}/${ROUNDS}: ${us.toFixed(1)} µs per statement`);
}
await sql.end({ timeout: 5 });
await stopTestCluster();
removeTempDirs();
const first = perRound[0] ?? 0;
const last = perRound.at(-1) ?? 0;
result({
  first_round_us: first.toFixed(1),
  last_round_us: last.toFixed(1),
  growth_pct: (((last - first) / first) * 100).toFixed(0),
  statements: ROUNDS * PER_ROUND,
  pool: POOL,
});
