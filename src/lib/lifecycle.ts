/**
 * One lifecycle contract for every role and child process: start() then stop(), both idempotent.
 * A Group starts services in order and stops them in reverse, with a deadline, joining errors.
 */
import type { Logger } from "../observability/logger.ts";

export interface Service {
  /** Short stable name, used in logs, /ready and /metrics. */
  readonly name: string;
  start(): Promise<void>;
  /** Must be safe to call twice, and before or after a failed start. */
  stop(): Promise<void>;
  /** null when ready, otherwise the reason it is not (shown by /ready). */
  readiness?(): string | null;
}

export class Group {
  private readonly started: Service[] = [];
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly log: Logger,
    private readonly stopTimeoutMs: number,
  ) {}

  get services(): readonly Service[] {
    return this.started;
  }

  /** Starts one service; when it fails, everything already started is stopped and the error rethrown. */
  async start(svc: Service): Promise<void> {
    const t0 = performance.now();
    this.log.info({ unit: svc.name }, `starting ${svc.name}`);
    try {
      await svc.start();
    } catch (err) {
      this.log.error({ unit: svc.name, err: String(err) }, `${svc.name} failed to start; rolling back`);
      await svc.stop().catch(() => {});
      await this.stop();
      throw err;
    }
    this.started.push(svc);
    this.log.info({ unit: svc.name, ms: Math.round(performance.now() - t0) }, `${svc.name} started`);
  }

  /** Stops everything in reverse start order; bounded by the deadline; safe to call twice. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const errors: unknown[] = [];
    const deadline = Date.now() + this.stopTimeoutMs;
    for (const svc of [...this.started].reverse()) {
      const left = Math.max(100, deadline - Date.now());
      try {
        await withTimeout(svc.stop(), left, `${svc.name} did not stop within ${left} ms`);
        this.log.info({ unit: svc.name }, `${svc.name} stopped`);
      } catch (err) {
        this.log.error({ unit: svc.name, err: String(err) }, `stopping ${svc.name} failed`);
        errors.push(err);
      }
    }
    this.started.length = 0;
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, "several services failed to stop");
  }
}

export async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
