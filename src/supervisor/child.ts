/**
 * A supervised child process: spawned in its own session (setsid) through setpriv so it dies with us (PR_SET_PDEATHSIG) even when the
 * collector is killed with SIGKILL, optionally as an unprivileged user; its output folded into our structured
 * log; restarted with exponential backoff when it dies; stopped with a signal and a deadline, then SIGKILL.
 */
import type { Subprocess } from "bun";
import { CollectorError } from "../lib/errors.ts";
import type { Service } from "../lib/lifecycle.ts";
import { sleep } from "../lib/lifecycle.ts";
import type { Logger } from "../observability/logger.ts";

export type Signal = "SIGTERM" | "SIGINT" | "SIGQUIT" | "SIGKILL";

export interface ChildSpec {
  name: string;
  /** argv; argv[0] is an absolute path to the executable. */
  argv: string[];
  cwd?: string;
  env?: Record<string, string>;
  /** Run as this user (only honoured when we are root). */
  runAs?: { uid: number; gid: number } | null;
  /** Signal for a graceful stop; also sent to the child when the collector dies. */
  stopSignal: Signal;
  /** Resolves true once the child serves; called repeatedly until it does or the start times out. */
  probe: () => Promise<boolean>;
  startTimeoutMs: number;
  /** Grace period after the stop signal before SIGKILL (default 8 s). */
  killAfterMs?: number;
  /** Maps one output line to a log level (child log formats differ). */
  levelOf?: (line: string) => "debug" | "info" | "warn" | "error";
}

export interface RestartPolicy {
  initialMs: number;
  maxMs: number;
  /** A child that ran this long before dying restarts after initialMs again. */
  resetAfterMs: number;
}

export interface ChildEvents {
  onRestart?: (name: string) => void;
  onStateChange?: (name: string, up: boolean) => void;
}

/** Delay before restart number `restarts + 1`: initial × 2^restarts, capped at max. */
export function restartDelay(restarts: number, policy: RestartPolicy): number {
  return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(restarts, 30));
}

type State = "idle" | "starting" | "running" | "restarting" | "stopping" | "stopped";

export class SupervisedChild implements Service {
  readonly name: string;
  private proc: Subprocess<"ignore", "pipe", "pipe"> | null = null;
  private state: State = "idle";
  private reason = "not started";
  private restarts = 0;
  private tail: string[] = [];
  private stopRequested = false;
  private stopPromise: Promise<void> | null = null;
  private restartLoop: Promise<void> | null = null;

  constructor(
    private readonly spec: ChildSpec,
    private readonly policy: RestartPolicy,
    private readonly log: Logger,
    private readonly events: ChildEvents = {},
  ) {
    this.name = spec.name;
  }

  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  get restartCount(): number {
    return this.restarts;
  }

  readiness(): string | null {
    return this.state === "running" ? null : `${this.name}: ${this.reason}`;
  }

  async start(): Promise<void> {
    if (this.state !== "idle" && this.state !== "stopped") return;
    this.stopRequested = false;
    this.stopPromise = null;
    await this.spawnAndWait();
  }

  private async spawnAndWait(): Promise<void> {
    this.state = "starting";
    this.reason = "starting";
    const proc = this.spawn();
    const exited = proc.exited.then((code) => ({ code }));
    const deadline = Date.now() + this.spec.startTimeoutMs;
    for (;;) {
      const raced = await Promise.race([exited, sleep(150).then(() => null)]);
      if (raced) {
        this.state = "stopped";
        this.reason = `exited with status ${raced.code} during start`;
        throw new CollectorError(
          "CHILD_FAILED",
          `${this.name} exited with status ${raced.code} while starting. Its last output:\n${this.tailText()}`,
        );
      }
      if (await this.spec.probe().catch(() => false)) break;
      if (Date.now() > deadline) {
        await this.kill(proc, "SIGKILL");
        this.state = "stopped";
        this.reason = "did not become ready";
        throw new CollectorError(
          "CHILD_FAILED",
          `${this.name} did not become ready within ${this.spec.startTimeoutMs} ms. Its last output:\n${this.tailText()}`,
        );
      }
    }
    this.state = "running";
    this.reason = "running";
    this.events.onStateChange?.(this.name, true);
    const startedAt = Date.now();
    void proc.exited.then((code) => this.onExit(proc, code, startedAt));
  }

  private spawn(): Subprocess<"ignore", "pipe", "pipe"> {
    // setsid: a new session, so a Ctrl-C on the terminal (SIGINT to the whole foreground process group) reaches
    // only the collector, which then stops its children in order. setpriv: die with the collector.
    const argv = ["/usr/bin/setsid", "/usr/bin/setpriv", `--pdeathsig=${this.spec.stopSignal}`];
    if (this.spec.runAs && process.getuid?.() === 0) {
      argv.push(`--reuid=${this.spec.runAs.uid}`, `--regid=${this.spec.runAs.gid}`, "--clear-groups");
    }
    argv.push("--", ...this.spec.argv);
    this.tail = [];
    const proc = Bun.spawn(argv, {
      cwd: this.spec.cwd,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", ...this.spec.env },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    this.proc = proc;
    this.log.info({ child: this.name, pid: proc.pid }, `${this.name} spawned`);
    void this.pump(proc.stdout);
    void this.pump(proc.stderr);
    return proc;
  }

  private async pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of stream) {
        buf += decoder.decode(chunk, { stream: true });
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          this.line(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          nl = buf.indexOf("\n");
        }
      }
    } catch {
      // stream closed with the process
    }
    if (buf) this.line(buf);
  }

  private line(raw: string): void {
    const line = raw.trimEnd();
    if (!line) return;
    this.tail.push(line);
    if (this.tail.length > 20) this.tail.shift();
    const level = this.spec.levelOf?.(line) ?? "info";
    this.log[level]({ child: this.name }, line);
  }

  private tailText(): string {
    return this.tail.length ? this.tail.map((l) => `    ${l}`).join("\n") : "    (nothing)";
  }

  private onExit(proc: Subprocess, code: number | null, startedAt: number): void {
    if (proc !== this.proc) return;
    this.events.onStateChange?.(this.name, false);
    if (this.stopRequested) return;
    this.log.error({ child: this.name, status: code }, `${this.name} exited unexpectedly; restarting`);
    this.state = "restarting";
    this.reason = `exited with status ${code}; restarting`;
    const ranMs = Date.now() - startedAt;
    this.restartLoop = this.restartWithBackoff(ranMs >= this.policy.resetAfterMs);
  }

  private async restartWithBackoff(reset: boolean): Promise<void> {
    let delay = reset ? this.policy.initialMs : restartDelay(this.restarts, this.policy);
    for (;;) {
      await sleep(delay);
      if (this.stopRequested) return;
      this.restarts++;
      this.events.onRestart?.(this.name);
      try {
        await this.spawnAndWait();
        this.log.info({ child: this.name, restarts: this.restarts }, `${this.name} restarted`);
        return;
      } catch (err) {
        if (this.stopRequested) return;
        this.state = "restarting";
        this.reason = `restart failed: ${String(err).split("\n")[0]}`;
        this.log.error({ child: this.name, err: String(err) }, `${this.name} restart failed`);
        delay = Math.min(this.policy.maxMs, delay * 2);
      }
    }
  }

  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    this.stopRequested = true;
    this.state = "stopping";
    this.reason = "stopping";
    const proc = this.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      await this.kill(proc, this.spec.stopSignal);
    }
    await this.restartLoop?.catch(() => {});
    // a restart may have spawned a new process while we were stopping
    if (this.proc && this.proc !== proc && this.proc.exitCode === null)
      await this.kill(this.proc, this.spec.stopSignal);
    this.state = "stopped";
    this.reason = "stopped";
  }

  /** Sends the signal, waits up to the grace period, then SIGKILL. */
  private async kill(proc: Subprocess, signal: Signal): Promise<void> {
    proc.kill(signal);
    const grace = this.spec.killAfterMs ?? 8000;
    const done = await Promise.race([proc.exited.then(() => true), sleep(grace).then(() => false)]);
    if (!done) {
      this.log.warn({ child: this.name }, `${this.name} ignored ${signal} for ${grace} ms; sending SIGKILL`);
      proc.kill("SIGKILL");
      await proc.exited;
    }
  }
}
