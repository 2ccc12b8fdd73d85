/**
 * The bundled wireguard-go, in the foreground (`-f`, WG_PROCESS_FOREGROUND=1) so the supervisor owns the
 * process: it creates the TUN interface and its control socket, and removes both when it exits. It knows
 * nothing until configured: the wgmanager role sets keys, port and peers through the control socket after
 * every (re)start.
 */
import type { Logger } from "../observability/logger.ts";
import { Uapi } from "../wireguard/uapi.ts";
import type { ChildEvents, RestartPolicy } from "./child.ts";
import { SupervisedChild } from "./child.ts";

export interface WireguardOptions {
  binary: string;
  ifname: string;
  /** Control socket of the interface, as this process reaches it. */
  socketPath: string;
  /** Places the command where the interface should live (identity in production). */
  wrap?: (argv: string[]) => string[];
}

export function wireguardChild(
  o: WireguardOptions,
  policy: RestartPolicy,
  log: Logger,
  events?: ChildEvents,
): SupervisedChild {
  const uapi = new Uapi(o.socketPath);
  const argv = [o.binary, "-f", o.ifname];
  return new SupervisedChild(
    {
      name: "wireguard-go",
      argv: o.wrap ? o.wrap(argv) : argv,
      env: { WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "error" },
      stopSignal: "SIGTERM",
      probe: async () => {
        await uapi.get();
        return true;
      },
      startTimeoutMs: 10_000,
      levelOf: (l) => (/^ERROR/.test(l) ? "error" : /^DEBUG/.test(l) ? "debug" : "info"),
    },
    policy,
    log,
    events,
  );
}
