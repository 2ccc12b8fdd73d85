/**
 * What `serve` does with an error nothing caught (a bug, or a library throwing from a timer): one structured
 * `fatal` log line with the stack — not Bun's plain-text trace — then a stop bounded in time (children get
 * their stop signal; they would also die with the collector through pdeathsig, src/supervisor/child.ts) and
 * exit 1, so that systemd, Kubernetes or the operator's supervisor restarts a clean process instead of one
 * running on in an unknown state.
 */
import type { Logger } from "../observability/logger.ts";

export function exitOnCrash(log: Logger, stop: () => Promise<void>, stopTimeoutMs = 15_000): void {
  let crashed = false;
  const crash = (kind: string) => (err: unknown) => {
    log.fatal(
      { kind, err: err instanceof Error ? err.message : String(err), stack: (err as Error)?.stack },
      `${kind}: the collector stops and exits 1 so that its supervisor starts it again; report this log line`,
    );
    if (crashed) return; // a second crash while stopping: the first one's exit follows
    crashed = true;
    // should the stop hang on something that holds no handle, the event loop empties and the process ends on
    // its own, before the bound's unref'd timer: with exit code 1 still, not 0
    process.exitCode = 1;
    const bound = new Promise<void>((resolve) => setTimeout(resolve, stopTimeoutMs).unref?.());
    void Promise.race([stop().catch(() => {}), bound]).finally(() => process.exit(1));
  };
  process.on("uncaughtException", crash("uncaught exception"));
  process.on("unhandledRejection", crash("unhandled promise rejection"));
}
