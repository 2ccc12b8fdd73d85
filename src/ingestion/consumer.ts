/**
 * One durable pull consumer per telemetry kind (`ingest-<kind>`, filter `secumon.<kind>.>`) on each TELEMETRY
 * stream (one per shard), shared by every ingestion instance, so workers scale horizontally: JetStream hands
 * each batch to one of them. Within a
 * process: one pump moves messages from the consumer into a bounded queue, and `writers` loops each take up to
 * `batch_size` queued messages (and at most GROUP_BYTES of declared uncompressed payload) and handle them as one
 * group (pipeline.ts) — a free writer takes whatever is queued at once, so groups are large under load and
 * latency is low when idle. With `ingestion.flush_interval` above 0, a writer that finds fewer than `batch_size`
 * batches queued waits until that many are, or until the oldest queued batch has waited that long: fewer,
 * larger transactions (less PostgreSQL CPU per row) for up to that much more lag. The queue's bound (messages and bytes) plus the
 * consumer's max_ack_pending keep memory flat when PostgreSQL is slow or down: the backlog stays in the stream.
 */
import {
  AckPolicy,
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { H, ingestConsumerName, type TelemetryKind } from "../bus/telemetry.ts";
import { sleep } from "../lib/lifecycle.ts";
import type { Logger } from "../observability/logger.ts";
import { isTransient, type PipelineDeps, processGroup } from "./pipeline.ts";

/** Most uncompressed payload bytes in one group (one transaction): bounds memory and keeps writers pipelined. */
export const GROUP_BYTES = 4 * 1024 * 1024;
/** Most uncompressed payload bytes queued per kind before the pump stops pulling. */
export const QUEUE_BYTES = 32 * 1024 * 1024;

const sizeOf = (m: JsMsg): number => {
  const declared = Number(m.headers?.get(H.uncompressedSize));
  return Number.isFinite(declared) && declared > 0
    ? Math.min(declared, 256 * 1024 * 1024)
    : m.data.byteLength;
};

export const consumerName = ingestConsumerName;

export interface KindConsumerOptions {
  /** TELEMETRY or one of its shards TELEMETRY_<k> (src/bus/telemetry.ts) */
  stream: string;
  kind: TelemetryKind;
  writers: number;
  batchSize: number;
  /** ms a writer may wait for a full group (ingestion.flush_interval); 0 = write what is queued at once */
  lingerMs: number;
  ackWaitMs: number;
  log: Logger;
  deps: PipelineDeps;
}

export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  kind: TelemetryKind,
  ackWaitMs: number,
  maxAckPending: number,
): Promise<void> {
  const cfg = {
    durable_name: consumerName(kind),
    filter_subject: `secumon.${kind}.>`,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: ackWaitMs * 1_000_000,
    max_ack_pending: maxAckPending,
    max_deliver: -1,
  };
  try {
    const info = await jsm.consumers.info(stream, cfg.durable_name);
    const c = info.config;
    if (c.ack_wait !== cfg.ack_wait || c.max_ack_pending !== cfg.max_ack_pending) {
      await jsm.consumers.update(stream, cfg.durable_name, {
        ack_wait: cfg.ack_wait,
        max_ack_pending: cfg.max_ack_pending,
      });
    }
  } catch (err) {
    if (!/consumer not found/i.test(String(err))) throw err;
    await jsm.consumers.add(stream, cfg).catch((e) => {
      if (!/already in use|already exists/i.test(String(e))) throw e; // another worker created it first
    });
  }
}

export class KindConsumer {
  private readonly queue: JsMsg[] = [];
  /** performance.now() at which each queued message arrived (parallel to `queue`) */
  private readonly arrived: number[] = [];
  private queuedBytes = 0;
  private readonly waiters: (() => void)[] = [];
  private room: (() => void) | null = null;
  private messages: ConsumerMessages | null = null;
  private stopped = false;
  private tasks: Promise<void>[] = [];
  private readonly highWater: number;
  consumer: Consumer | null = null;

  constructor(
    private readonly js: JetStreamClient,
    private readonly o: KindConsumerOptions,
  ) {
    this.highWater = o.batchSize * o.writers;
  }

  async start(): Promise<void> {
    this.consumer = await this.js.consumers.get(this.o.stream, consumerName(this.o.kind));
    this.tasks.push(this.pump());
    for (let i = 0; i < this.o.writers; i++) this.tasks.push(this.writer());
  }

  private async pump(): Promise<void> {
    while (!this.stopped) {
      try {
        const consumer = this.consumer as Consumer;
        this.messages = await consumer.consume({ max_messages: Math.max(1, this.o.batchSize) });
        for await (const m of this.messages) {
          this.queue.push(m);
          this.arrived.push(performance.now());
          this.queuedBytes += sizeOf(m);
          this.signal();
          while ((this.queue.length >= this.highWater || this.queuedBytes >= QUEUE_BYTES) && !this.stopped) {
            await new Promise<void>((r) => {
              this.room = r;
            });
          }
          if (this.stopped) break;
        }
      } catch (err) {
        if (this.stopped) break;
        this.o.log.warn({ kind: this.o.kind, err: String(err) }, "telemetry consumer interrupted; resuming");
        await sleep(1000);
      }
    }
  }

  /** Wakes one idle writer. */
  private signal(): void {
    this.waiters.shift()?.();
  }

  private async writer(): Promise<void> {
    while (!this.stopped) {
      if (this.queue.length === 0) {
        await new Promise<void>((r) => {
          this.waiters.push(r);
        });
        continue;
      }
      const linger = this.lingerLeft();
      if (linger > 0) {
        await this.idle(linger);
        continue;
      }
      let n = 0;
      let bytes = 0;
      while (n < this.queue.length && n < this.o.batchSize && (n === 0 || bytes < GROUP_BYTES)) {
        bytes += sizeOf(this.queue[n] as JsMsg);
        n++;
      }
      const group = this.queue.splice(0, n);
      this.arrived.splice(0, n);
      this.queuedBytes -= bytes;
      if (this.queue.length > 0) this.signal(); // let another free writer take the rest
      const r = this.room;
      this.room = null;
      r?.();
      try {
        this.o.deps.metrics.groupBatches.observe({ kind: this.o.kind }, group.length);
        await processGroup(this.o.kind, group, this.o.deps);
      } catch (err) {
        // PostgreSQL or NATS unavailable before the write (source lookup, partitions, dead-letter publish): the
        // batches go back to the stream and come again; anything else is a bug worth an error line.
        (isTransient(err) ? this.o.log.warn.bind(this.o.log) : this.o.log.error.bind(this.o.log))(
          { kind: this.o.kind, err: String(err), batches: group.length },
          "telemetry group not written; its batches will be redelivered",
        );
        for (const m of group) m.nak(2000);
        await sleep(500);
      }
    }
  }

  /** ms this writer should still wait for a fuller group (0: write now). */
  private lingerLeft(): number {
    if (this.o.lingerMs <= 0 || this.queue.length >= this.o.batchSize || this.queuedBytes >= GROUP_BYTES)
      return 0;
    return Math.max(0, (this.arrived[0] as number) + this.o.lingerMs - performance.now());
  }

  /** Waits for the pump's next message or `ms`, whichever comes first. */
  private idle(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(wake);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve();
      }, Math.ceil(ms));
      this.waiters.push(wake);
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of this.waiters.splice(0)) w();
    const r = this.room;
    this.room = null;
    r?.();
    await this.messages?.close().catch(() => {});
    await Promise.all(this.tasks);
    for (const m of this.queue.splice(0)) m.nak(); // not written: hand back at once
    this.arrived.length = 0;
    this.queuedBytes = 0;
  }
}
