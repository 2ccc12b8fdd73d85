/**
 * The reference agent/probe simulator, as a library (tests, benchmarks) and behind `secumon-collector simulate`.
 *
 *   const sim = createSimulator({ gatewayAddress: "localhost:9443", caPem, token, agents: 10,
 *                                 ratePerSecond: 2, samplesPerBatch: 500, kinds: ["metrics", "logs"] });
 *   await sim.start(); … sim.stats(); await sim.stop();
 *
 * Enrolls `agents` principals with the token (agents, or probes when every kind is scans/snmp), then each sends
 * `ratePerSecond` batches per second (round robin over `kinds`), keeps every batch until acknowledged, and
 * resends unacknowledged batches after a reconnect (same batch id: the collector stores it once). Simulated
 * probes ask GetAssignments for their targets (at start, then every minute) and report results for those; a
 * probe with no assignment reports on made-up target ids, which ingestion counts as unknown_target and drops.
 */
import type { TelemetryKind } from "../bus/telemetry.ts";
import type { Compression } from "../protocol/compression.ts";
import { type AgentStats, newAgentStats, SimAgent } from "./agent.ts";
import { enroll, type Identity } from "./client.ts";
import { simHost } from "./data.ts";

export { enroll, type Identity, identityClient, makeClient, unaryCall } from "./client.ts";

export interface SimulatorOptions {
  gatewayAddress: string;
  /** The collector CA (PEM) to trust for the server certificate. */
  caPem: string;
  /** Enrollment token; not needed when `identities` are given. */
  token?: string;
  /** Already-enrolled identities to reuse instead of enrolling. */
  identities?: Identity[];
  agents: number;
  /** Batches per second per agent. */
  ratePerSecond: number;
  samplesPerBatch: number;
  kinds: TelemetryKind[];
  compression?: Compression;
  /** TLS server name when the address is not in the server certificate. */
  serverName?: string;
  /** Unacknowledged batches one agent keeps before it stops producing (its buffer). Default 1000. */
  maxPending?: number;
  enrollConcurrency?: number;
  /** Reuse 16 pre-built payloads per kind instead of building each batch (benchmarks). */
  reusePayloads?: boolean;
}

export interface SimulatorStats {
  enrolled: number;
  sent: number;
  resent: number;
  acked: number;
  rejected: number;
  retried: number;
  pending: number;
  ackedSamples: Record<string, number>;
  streamErrors: number;
  lastError: string;
}

export interface Simulator {
  start(): Promise<void>;
  /**
   * Stops producing and keeps resending what is unacknowledged until every batch is acknowledged (or refused),
   * or `timeoutMs` passes. Resolves the number of batches still pending.
   */
  drain(timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
  stats(): SimulatorStats;
  identities(): Identity[];
  /** Ack latencies (ms) recorded since the last call (bounded reservoir). */
  drainLatencies(): number[];
}

const PROBE_KINDS = new Set<TelemetryKind>(["scans", "snmp"]);

export function createSimulator(o: SimulatorOptions): Simulator {
  const kind: "agent" | "probe" = o.kinds.every((k) => PROBE_KINDS.has(k)) ? "probe" : "agent";
  const stats: AgentStats = newAgentStats();
  const agents: SimAgent[] = [];
  const cache = o.reusePayloads ? new Map() : null;
  let ids: Identity[] = [];
  let timer: ReturnType<typeof setInterval> | null = null;
  let producing = true;
  let latencies: number[] = [];
  const onAck = (ms: number) => {
    if (latencies.length < 200_000) latencies.push(ms);
  };
  /** Batches sent and not yet acknowledged, over every agent. */
  const pending = () => agents.reduce((n, a) => n + a.pendingCount, 0);

  async function enrollAll(): Promise<Identity[]> {
    if (o.identities) return o.identities.slice(0, o.agents);
    if (!o.token) throw new Error("the simulator needs an enrollment token (or identities)");
    const out: Identity[] = [];
    let next = 0;
    const worker = async () => {
      while (next < o.agents) {
        const i = next++;
        out[i] = await enroll({
          address: o.gatewayAddress,
          caPem: o.caPem,
          token: o.token!,
          kind,
          name: `sim-${kind}-${String(i).padStart(5, "0")}`,
          info: {
            hostname: `sim-host-${i}`,
            os: "debian",
            os_version: "12",
            arch: "amd64",
            version: "sim-0.1",
          },
          ...(o.serverName ? { serverName: o.serverName } : {}),
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.enrollConcurrency ?? 8, o.agents) }, worker));
    return out;
  }

  return {
    async start() {
      ids = await enrollAll();
      for (const [i, identity] of ids.entries()) {
        agents.push(
          new SimAgent({
            identity,
            address: o.gatewayAddress,
            ...(o.serverName ? { serverName: o.serverName } : {}),
            host: simHost(i),
            kinds: o.kinds,
            samplesPerBatch: o.samplesPerBatch,
            compression: o.compression ?? "lz4",
            maxPending: o.maxPending ?? 1000,
            stats,
            onAck,
            ...(cache ? { payloadCache: cache } : {}),
          }),
        );
      }
      if (kind === "probe") await Promise.all(agents.map((a) => a.loadAssignments()));
      // one scheduler for every agent: spreads the production evenly over each second
      const tickMs = 20;
      const perTick = (o.ratePerSecond * agents.length * tickMs) / 1000;
      let credit = 0;
      let cursor = 0;
      let resendTick = 0;
      timer = setInterval(() => {
        credit = producing ? credit + perTick : 0;
        // every agent's buffer full: the rest of the credit is dropped (no spinning over full agents)
        let full = 0;
        while (credit >= 1 && full < agents.length) {
          if (agents[cursor++ % agents.length]!.produce()) full = 0;
          else full++;
          credit -= 1;
        }
        if (full >= agents.length) credit = 0;
        if (++resendTick % 25 === 0) for (const a of agents) a.tick();
        if (kind === "probe" && resendTick % 3000 === 0) for (const a of agents) void a.loadAssignments();
      }, tickMs);
    },
    async drain(timeoutMs) {
      producing = false;
      const deadline = Date.now() + timeoutMs;
      while (pending() > 0 && Date.now() < deadline) await Bun.sleep(50);
      return pending();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      for (const a of agents) a.stop();
    },
    stats: () => ({
      enrolled: ids.length,
      sent: stats.sent,
      resent: stats.resent,
      acked: stats.acked,
      rejected: stats.rejected,
      retried: stats.retried,
      pending: pending(),
      ackedSamples: { ...stats.ackedSamples },
      streamErrors: stats.streamErrors,
      lastError: stats.lastError,
    }),
    identities: () => ids,
    drainLatencies() {
      const l = latencies;
      latencies = [];
      return l;
    },
  };
}
