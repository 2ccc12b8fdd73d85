/** `secumon-collector simulate`: the reference agent/probe simulator against a running gateway. */
import { readFileSync } from "node:fs";
import { TELEMETRY_KINDS, type TelemetryKind } from "../bus/telemetry.ts";
import { parseDuration } from "../config/schema.ts";
import { UsageError } from "../lib/errors.ts";
import { COMPRESSIONS, type Compression } from "../protocol/compression.ts";
import { createSimulator } from "../simulator/index.ts";
import { parseArgs } from "./args.ts";

export const SIMULATE_HELP: Record<string, string> = {
  simulate: `Usage: secumon-collector simulate --ca FILE (--token TOKEN | --token-file FILE) [options]

Enrolls N simulated agents (or probes, when every kind is scans/snmp) with an enrollment token, then streams
realistic telemetry batches to the gateway at the chosen rate, keeps every batch until it is acknowledged and
resends it after a reconnect. Prints counters every 5 s (JSON lines) and a summary at the end.

  --gateway HOST:PORT   gateway address (default localhost:9443)
  --ca FILE             the collector CA certificate (PEM) to trust
  --token TOKEN         enrollment token (smet_…); or --token-file FILE
  --agents N            number of simulated agents (default 1)
  --rate R              batches per second per agent (default 1)
  --samples N           samples per batch (default 100)
  --kinds LIST          comma-separated: ${TELEMETRY_KINDS.join(", ")} (default metrics,logs,inventory)
  --compression C       none, lz4 or zstd (default lz4)
  --duration D          how long to send, e.g. 30s or 5m; 0 = until Ctrl-C (default 0)
  --server-name NAME    TLS server name when the address is not in the server certificate`,
};

const SPEC = {
  help: { value: false },
  gateway: { value: true },
  ca: { value: true },
  token: { value: true },
  "token-file": { value: true },
  agents: { value: true },
  rate: { value: true },
  samples: { value: true },
  kinds: { value: true },
  compression: { value: true },
  duration: { value: true },
  "server-name": { value: true },
};

function positiveNumber(v: string | true | undefined, name: string, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`simulate: --${name} must be a positive number, got ${String(v)}`);
  return n;
}

export async function simulate(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(argv, SPEC, "simulate");
  if (flags.help) {
    console.log(SIMULATE_HELP.simulate);
    return 0;
  }
  if (positionals.length) throw new UsageError(`simulate: unexpected argument ${positionals[0]}`);
  if (typeof flags.ca !== "string")
    throw new UsageError("simulate: --ca FILE is required (the collector CA certificate, PEM)");
  let caPem: string;
  let token: string;
  try {
    caPem = readFileSync(flags.ca, "utf8");
    token =
      typeof flags.token === "string"
        ? flags.token
        : typeof flags["token-file"] === "string"
          ? readFileSync(flags["token-file"], "utf8").trim()
          : "";
  } catch (err) {
    throw new UsageError(
      `simulate: cannot read a file given on the command line: ${String(err).slice(0, 160)}`,
    );
  }
  if (!token) throw new UsageError("simulate: give an enrollment token with --token or --token-file");
  const kinds = String(flags.kinds ?? "metrics,logs,inventory")
    .split(",")
    .map((k) => k.trim()) as TelemetryKind[];
  for (const k of kinds) {
    if (!TELEMETRY_KINDS.includes(k))
      throw new UsageError(`simulate: unknown kind ${k}; use ${TELEMETRY_KINDS.join(", ")}`);
  }
  const probeKinds = kinds.filter((k) => k === "scans" || k === "snmp").length;
  if (probeKinds > 0 && probeKinds < kinds.length) {
    throw new UsageError(
      "simulate: scans/snmp are probe kinds and cannot be mixed with agent kinds in one run",
    );
  }
  const compression = String(flags.compression ?? "lz4") as Compression;
  if (!COMPRESSIONS.includes(compression))
    throw new UsageError(`simulate: --compression must be none, lz4 or zstd`);
  let durationMs = 0;
  if (typeof flags.duration === "string" && flags.duration !== "0") {
    try {
      durationMs = parseDuration(flags.duration);
    } catch {
      throw new UsageError(`simulate: --duration must look like 30s or 5m, got ${flags.duration}`);
    }
  }
  const sim = createSimulator({
    gatewayAddress: String(flags.gateway ?? "localhost:9443"),
    caPem,
    token,
    agents: Math.floor(positiveNumber(flags.agents, "agents", 1)),
    ratePerSecond: positiveNumber(flags.rate, "rate", 1),
    samplesPerBatch: Math.floor(positiveNumber(flags.samples, "samples", 100)),
    kinds,
    compression,
    ...(typeof flags["server-name"] === "string" ? { serverName: flags["server-name"] } : {}),
  });
  await sim.start();
  const report = () => console.log(JSON.stringify({ time: new Date().toISOString(), ...sim.stats() }));
  const every = setInterval(report, 5000);
  await new Promise<void>((resolve) => {
    if (durationMs > 0) setTimeout(resolve, durationMs);
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  clearInterval(every);
  // stop producing, and give what is in flight a moment to be acknowledged before reporting
  await sim.drain(5000);
  await sim.stop();
  report();
  return 0;
}
