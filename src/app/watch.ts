/** Watches an external dependency (database or NATS we do not supervise) so /ready reflects it. */
import { CollectorError } from "../lib/errors.ts";
import type { Service } from "../lib/lifecycle.ts";
import type { Logger } from "../observability/logger.ts";

export class ExternalWatch implements Service {
  private timer: ReturnType<typeof setInterval> | null = null;
  private reason: string | null = "not checked yet";

  constructor(
    readonly name: string,
    /** The setting that points at the dependency, named in the error when it is unreachable at start. */
    private readonly setting: string,
    private readonly check: () => Promise<boolean>,
    private readonly log: Logger,
    private readonly intervalMs = 5000,
  ) {}

  async start(): Promise<void> {
    await this.probe();
    if (this.reason) {
      throw new CollectorError(
        this.name === "database" ? "DATABASE_UNAVAILABLE" : "DEPENDENCY_UNAVAILABLE",
        `${this.name} is not reachable (${this.reason}). Check ${this.setting} in the config and that the server is running.`,
      );
    }
    this.timer = setInterval(() => void this.probe(), this.intervalMs);
  }

  private async probe(): Promise<void> {
    const before = this.reason;
    try {
      this.reason = (await this.check()) ? null : "check failed";
    } catch (err) {
      this.reason = String(err instanceof Error ? err.message : err);
    }
    if (before !== this.reason && before !== "not checked yet") {
      if (this.reason)
        this.log.error({ dependency: this.name, reason: this.reason }, `${this.name} became unavailable`);
      else this.log.info({ dependency: this.name }, `${this.name} is available again`);
    }
  }

  readiness(): string | null {
    return this.reason ? `${this.name}: ${this.reason}` : null;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
