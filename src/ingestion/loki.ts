/**
 * Pushes stored log lines to Loki (`POST {loki.url}/loki/api/v1/push`, JSON) when loki.url is set. PostgreSQL
 * stays the system of record: lines are queued after their transaction committed, pushed in batches of about
 * `loki.batch_size` bytes or every `loki.batch_wait`, and retried with backoff while Loki fails (4xx other
 * than 429 is permanent: that batch is dropped and counted). The queue is bounded (64 MiB of lines); beyond
 * it the oldest lines are dropped and counted. Lines queued when the process stops are not pushed.
 * Streams are labelled {job="secumon", tenant_id, agent_id, level}; the source goes in the line's
 * structured metadata.
 */
import type { Logger } from "../observability/logger.ts";
import type { Registry } from "../observability/metrics.ts";
import type { LogLine } from "../telemetry/rows.ts";

export interface LokiOptions {
  url: string;
  batchBytes: number;
  batchWaitMs: number;
  log: Logger;
  metrics: Registry;
  maxQueueBytes?: number;
  fetch?: typeof fetch;
}

interface Queued {
  tenantId: string;
  agentId: string;
  line: LogLine;
  bytes: number;
}

export class LokiPusher {
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private backoffMs = 0;
  private readonly pushed;
  private readonly dropped;

  constructor(private readonly o: LokiOptions) {
    this.pushed = o.metrics.counter<"outcome">({
      name: "secumon_loki_pushes_total",
      help: "Push requests to Loki by outcome: ok, retry (will be retried), rejected (dropped).",
      labelNames: ["outcome"],
    });
    this.dropped = o.metrics.counter({
      name: "secumon_loki_dropped_lines_total",
      help: "Log lines never pushed to Loki (queue full or rejected by Loki); they are still in PostgreSQL.",
    });
  }

  enqueue(tenantId: string, agentId: string, lines: LogLine[]): void {
    if (this.stopped) return;
    const max = this.o.maxQueueBytes ?? 64 * 1024 * 1024;
    for (const line of lines) {
      const bytes = line.message.length + 64;
      this.queue.push({ tenantId, agentId, line, bytes });
      this.queuedBytes += bytes;
    }
    while (this.queuedBytes > max && this.queue.length > 0) {
      const q = this.queue.shift() as Queued;
      this.queuedBytes -= q.bytes;
      this.dropped.inc();
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.running || this.timer || this.queue.length === 0) return;
    const full = this.queuedBytes >= this.o.batchBytes;
    const wait = this.backoffMs > 0 ? this.backoffMs : full ? 0 : this.o.batchWaitMs;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.pushOnce().finally(() => {
        this.running = null;
        this.schedule();
      });
    }, wait);
  }

  private async pushOnce(): Promise<void> {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && (n === 0 || bytes < this.o.batchBytes))
      bytes += (this.queue[n++] as Queued).bytes;
    const batch = this.queue.slice(0, n);
    const streams = new Map<
      string,
      { stream: Record<string, string>; values: [string, string, Record<string, string>][] }
    >();
    for (const q of batch) {
      const key = `${q.tenantId}|${q.agentId}|${q.line.level}`;
      let s = streams.get(key);
      if (!s) {
        s = {
          stream: { job: "secumon", tenant_id: q.tenantId, agent_id: q.agentId, level: q.line.level },
          values: [],
        };
        streams.set(key, s);
      }
      s.values.push([`${BigInt(q.line.timeMs) * 1_000_000n}`, q.line.message, { source: q.line.source }]);
    }
    let outcome: "ok" | "retry" | "rejected";
    try {
      const res = await (this.o.fetch ?? fetch)(`${this.o.url.replace(/\/+$/, "")}/loki/api/v1/push`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ streams: [...streams.values()] }),
        signal: AbortSignal.timeout(10_000),
      });
      outcome = res.ok ? "ok" : res.status === 429 || res.status >= 500 ? "retry" : "rejected";
      if (outcome !== "ok") {
        this.o.log.warn({ status: res.status, lines: n }, `Loki answered ${res.status} to a push`);
      }
    } catch (err) {
      outcome = "retry";
      this.o.log.warn(
        { err: String(err), lines: n },
        "Loki push failed; retrying (check loki.url and that Loki is up)",
      );
    }
    this.pushed.inc({ outcome });
    if (outcome === "retry") {
      this.backoffMs = Math.min(30_000, Math.max(500, this.backoffMs * 2));
      return;
    }
    this.backoffMs = 0;
    this.queue.splice(0, n);
    this.queuedBytes -= bytes;
    if (outcome === "rejected") this.dropped.inc(n);
  }

  /** Pending lines (tests). */
  get pending(): number {
    return this.queue.length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}
