/**
 * Open-loop load for bench-api's sign-in figure: RATE requests per second for SECONDS, each sent on schedule
 * whether or not earlier ones have been answered (wrk's closed loop would wait, hiding queueing). Latency is
 * measured from the scheduled send time, so a stall delays the requests behind it and shows in the figure.
 * Runs as its own process (bench/api.ts spawns it), so it does not share the API's JavaScript thread.
 *   bun bench/open-loop.ts <url> <method> <json body> <rate> <seconds>
 * Prints one line: `OPEN <n> <errors> <p50 ms> <p99 ms> <max ms>`.
 */
export {};

const [url, method, body, rateArg, secondsArg] = process.argv.slice(2);
if (!url || !method || body === undefined || !rateArg || !secondsArg) {
  console.error("usage: bun bench/open-loop.ts <url> <method> <json body> <rate> <seconds>");
  process.exit(2);
}
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const total = Math.round(rate * seconds);
const lat: number[] = [];
let errors = 0;
const t0 = performance.now() + 50;
const pending: Promise<void>[] = [];
for (let i = 0; i < total; i++) {
  const at = t0 + (i * 1000) / rate;
  const wait = at - performance.now();
  if (wait > 0) await Bun.sleep(wait);
  pending.push(
    fetch(url, { method, headers: { "content-type": "application/json" }, body })
      .then(async (r) => {
        await r.arrayBuffer();
        if (r.status !== 200) errors++;
        else lat.push(performance.now() - at);
      })
      .catch(() => {
        errors++;
      }),
  );
}
await Promise.all(pending);
lat.sort((a, b) => a - b);
const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] ?? Number.NaN;
console.log(
  `OPEN ${lat.length} ${errors} ${pct(50).toFixed(3)} ${pct(99).toFixed(3)} ${(lat.at(-1) ?? Number.NaN).toFixed(3)}`,
);
