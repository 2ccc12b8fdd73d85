/**
 * One simulated agent or probe: a grpc-js client over mTLS, one bidirectional stream per streamed kind
 * (unary calls for inventory), batches kept until acknowledged and resent after a reconnect.
 */
import { randomUUID } from "node:crypto";
import type { Client, ClientDuplexStream, ServiceError } from "@grpc/grpc-js";
import type { TelemetryKind } from "../bus/telemetry.ts";
import { type Compression, compress } from "../protocol/compression.ts";
import { messageType } from "../protocol/schema.ts";
import { type Identity, identityClient, unaryCall } from "./client.ts";
import { makePayload, type SimHost } from "./data.ts";

const COMPRESSION_NUMBER: Record<Compression, number> = { none: 0, lz4: 1, zstd: 2 };
const BATCH = messageType("TelemetryBatch");
const METHOD: Record<TelemetryKind, string> = {
  metrics: "SendMetrics",
  logs: "SendLogs",
  inventory: "SendInventory",
  scans: "SendResults",
  snmp: "SendSnmp",
};

export interface Pending {
  batch: {
    batch_id: string;
    compression: number;
    uncompressed_size: number;
    payload: Uint8Array;
    created_unix_ms: number;
  };
  /** the batch already serialized (reused payloads): written as is, the client does not encode it again */
  wire: Uint8Array | null;
  kind: TelemetryKind;
  samples: number;
  sentAt: number;
  inFlight: boolean;
}

/** A pre-built payload; `tail` is its TelemetryBatch fields 2–4 (compression, size, payload) serialized once. */
export interface CachedPayload {
  raw: number;
  payload: Uint8Array;
  samples: number;
  tail: Uint8Array;
}

export interface AgentStats {
  sent: number;
  resent: number;
  acked: number;
  rejected: number;
  retried: number;
  ackedSamples: Record<string, number>;
  streamErrors: number;
  lastError: string;
}

/** Counters at zero, shared by all the agents of one simulator run. */
export function newAgentStats(): AgentStats {
  return {
    sent: 0,
    resent: 0,
    acked: 0,
    rejected: 0,
    retried: 0,
    ackedSamples: {},
    streamErrors: 0,
    lastError: "",
  };
}

export interface SimAgentOptions {
  identity: Identity;
  address: string;
  serverName?: string;
  host: SimHost;
  kinds: TelemetryKind[];
  samplesPerBatch: number;
  compression: Compression;
  maxPending: number;
  stats: AgentStats;
  onAck?: (latencyMs: number) => void;
  /**
   * Reuse a few pre-built payloads per kind (benchmarks: keeps the client's CPU for sending). Each batch is then
   * its new batch id and timestamp serialized, followed by the payload's fields serialized once (protobuf fields
   * may come in any order), so the client neither rebuilds nor re-encodes the payload.
   */
  payloadCache?: Map<TelemetryKind, CachedPayload[]>;
}

interface Stream {
  call: ClientDuplexStream<
    object,
    { batch_id: string; code: number; message: string; retry_after_ms: number }
  >;
  open: boolean;
}

export class SimAgent {
  private client: Client;
  private readonly pending = new Map<string, Pending>();
  private readonly streams = new Map<TelemetryKind, Stream>();
  private readonly reconnectAt = new Map<TelemetryKind, number>();
  private backoff = 250;
  private assignmentsVersion = "";
  private stopped = false;
  private kindIndex = 0;

  constructor(private readonly o: SimAgentOptions) {
    this.client = identityClient(o.identity, o.address, o.serverName ? { serverName: o.serverName } : {});
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * A probe's targets from GetAssignments: its scan results and SNMP samples then name them (the collector
   * stores results only for targets of the probe's tenant). Keeps the previous targets when the call fails or
   * assigns nothing. Returns how many targets are assigned, or null when the call failed.
   */
  async loadAssignments(): Promise<number | null> {
    if (this.o.identity.kind !== "probe") return null;
    try {
      const a = await unaryCall<{ version: string; unchanged: boolean; targets: { id: string }[] }>(
        this.client,
        "GetAssignments",
        { known_version: this.assignmentsVersion },
      );
      if (a.unchanged) return this.o.host.targets.length;
      this.assignmentsVersion = a.version;
      if (a.targets.length > 0) this.o.host.targets = a.targets.map((t) => t.id);
      return a.targets.length;
    } catch (err) {
      this.o.stats.lastError = `GetAssignments: ${(err as Error).message}`;
      return null;
    }
  }

  /** Produces one batch of the next kind (round robin) and sends it; false when the agent's buffer is full. */
  produce(): boolean {
    if (this.stopped || this.pending.size >= this.o.maxPending) return false;
    const kind = this.o.kinds[this.kindIndex++ % this.o.kinds.length]!;
    const { raw, payload, samples, tail } = this.build(kind);
    const batch = {
      batch_id: randomUUID(),
      compression: COMPRESSION_NUMBER[this.o.compression],
      uncompressed_size: raw,
      payload,
      created_unix_ms: Date.now(),
    };
    const wire = tail
      ? Buffer.concat([
          BATCH.encode({ batch_id: batch.batch_id, created_unix_ms: batch.created_unix_ms }).finish(),
          tail,
        ])
      : null;
    const p: Pending = { batch, wire, kind, samples, sentAt: 0, inFlight: false };
    this.pending.set(p.batch.batch_id, p);
    this.send(p);
    return true;
  }

  private build(kind: TelemetryKind): {
    raw: number;
    payload: Uint8Array;
    samples: number;
    tail?: Uint8Array;
  } {
    const make = () => {
      const { bytes, samples } = makePayload(
        kind,
        this.o.host,
        kind === "inventory" ? 50 : this.o.samplesPerBatch,
      );
      return { raw: bytes.byteLength, payload: compress(this.o.compression, bytes), samples };
    };
    const cache = this.o.payloadCache;
    if (!cache) return make();
    let list = cache.get(kind);
    if (!list) {
      list = [];
      cache.set(kind, list);
    }
    if (list.length < 16) {
      const m = make();
      const tail = BATCH.encode({
        compression: COMPRESSION_NUMBER[this.o.compression],
        uncompressed_size: m.raw,
        payload: m.payload,
      }).finish();
      list.push({ ...m, tail });
    }
    return list[Math.floor(Math.random() * list.length)]!;
  }

  /** (Re)sends what is pending and not in flight; reopens closed streams when their backoff expired. */
  tick(): void {
    if (this.stopped) return;
    const now = Date.now();
    for (const p of this.pending.values()) {
      if (!p.inFlight && now - p.sentAt >= 1000 && this.send(p)) this.o.stats.resent++;
    }
  }

  /** false when the kind's stream is closed and waiting to reconnect (the batch stays pending). */
  private send(p: Pending): boolean {
    if (p.kind === "inventory") {
      this.sendUnary(p);
      return true;
    }
    const s = this.stream(p.kind);
    if (!s) return false;
    p.inFlight = true;
    p.sentAt = Date.now();
    this.o.stats.sent++;
    s.call.write(p.wire ?? p.batch);
    return true;
  }

  private sendUnary(p: Pending): void {
    p.inFlight = true;
    p.sentAt = Date.now();
    this.o.stats.sent++;
    unaryCall<{ batch_id: string; code: number; message: string; retry_after_ms: number }>(
      this.client,
      METHOD[p.kind]!,
      p.batch,
    )
      .then((ack) => this.onAck(ack))
      .catch((err: ServiceError) => {
        p.inFlight = false;
        if (err.code === 3 || err.code === 7 || err.code === 16) {
          this.pending.delete(p.batch.batch_id);
          this.o.stats.rejected++;
        } else this.o.stats.retried++;
        this.o.stats.lastError = err.message;
      });
  }

  private stream(kind: TelemetryKind): Stream | null {
    const existing = this.streams.get(kind);
    if (existing?.open) return existing;
    if ((this.reconnectAt.get(kind) ?? 0) > Date.now() || this.stopped) return null;
    const fn = (this.client as unknown as Record<string, () => Stream["call"]>)[METHOD[kind]!]!;
    const call = fn.call(this.client);
    const s: Stream = { call, open: true };
    this.streams.set(kind, s);
    call.on("data", (ack) => {
      this.backoff = 250;
      this.onAck(ack);
    });
    const closed = (err?: ServiceError) => {
      if (!s.open) return;
      s.open = false;
      if (err) {
        this.o.stats.streamErrors++;
        this.o.stats.lastError = `${err.code} ${err.details}`;
      }
      for (const p of this.pending.values()) if (p.kind === kind) p.inFlight = false;
      this.reconnectAt.set(kind, Date.now() + this.backoff);
      this.backoff = Math.min(this.backoff * 2, 5000);
    };
    call.on("error", (err: ServiceError) => closed(err));
    call.on("end", () => closed());
    return s;
  }

  private onAck(ack: { batch_id: string; code: number; message: string; retry_after_ms: number }): void {
    const p = this.pending.get(ack.batch_id);
    if (!p) return;
    if (ack.code === 0) {
      this.pending.delete(ack.batch_id);
      this.o.stats.acked++;
      this.o.stats.ackedSamples[p.kind] = (this.o.stats.ackedSamples[p.kind] ?? 0) + p.samples;
      this.o.onAck?.(Date.now() - p.sentAt);
    } else if (ack.code === 8 || ack.code === 14) {
      this.o.stats.retried++;
      p.inFlight = false;
      p.sentAt = Date.now() + Math.max(0, ack.retry_after_ms - 1000);
    } else {
      this.pending.delete(ack.batch_id);
      this.o.stats.rejected++;
      this.o.stats.lastError = ack.message;
    }
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.streams.values()) {
      if (s.open) s.call.end();
      s.open = false;
    }
    this.client.close();
  }
}
