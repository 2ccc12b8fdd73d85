/**
 * Micro-benchmark of the protocol's hot path in the gateway: the strict wire check (validatePayload) and the full
 * decode (decodePayload) of a realistic 500-sample metrics batch from the simulator's payload generator, plus the
 * wire check of a 500-line logs batch (string-heavy: UTF-8 validation). ITERATIONS (default 4000) per figure,
 * after a warm-up; the best of ROUNDS (default 5) rounds is reported, the machine being shared.
 */
import type { TelemetryKind } from "../src/bus/telemetry.ts";
import { decodePayload, validatePayload } from "../src/protocol/payload.ts";
import { makePayload, simHost } from "../src/simulator/data.ts";
import { printMachine, result } from "./machine.ts";

const iterations = Number(process.env.ITERATIONS ?? 4000);
const rounds = Number(process.env.ROUNDS ?? 5);
const samples = 500;

printMachine();

function bestUs(label: string, fn: () => void, n: number): number {
  for (let i = 0; i < Math.min(n, 500); i++) fn(); // warm-up (JIT)
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const t0 = Bun.nanoseconds();
    for (let i = 0; i < n; i++) fn();
    best = Math.min(best, (Bun.nanoseconds() - t0) / 1e3 / n);
  }
  console.log(`${label}: ${best.toFixed(2)} µs per batch (best of ${rounds} × ${n})`);
  return best;
}

const host = simHost(0);
const batch = (kind: TelemetryKind) => makePayload(kind, host, samples, 1_764_000_000_000).bytes;
const metrics = batch("metrics");
const logs = batch("logs");
console.log(
  `metrics batch: ${samples} samples, ${metrics.byteLength} bytes; logs batch: ${logs.byteLength} bytes`,
);

const validate = bestUs("validatePayload(metrics)", () => validatePayload("metrics", metrics), iterations);
const validateLogs = bestUs("validatePayload(logs)", () => validatePayload("logs", logs), iterations);
const decode = bestUs("decodePayload(metrics)", () => decodePayload("metrics", metrics), iterations / 4);

result({
  validate_us_per_batch: validate.toFixed(1),
  decode_us_per_batch: decode.toFixed(1),
  validate_logs_us_per_batch: validateLogs.toFixed(1),
  batch_bytes: metrics.byteLength,
});
