/**
 * Where the WireGuard interface lives and what the host allows. In production: wireguard-go spawned directly,
 * its control socket under /var/run/wireguard, `ip` (iproute2) on the collector's own network namespace.
 * Tests place it in namespaces they create (argv prefix, socket path seen through /proc/<pid>/root, `ip -n`).
 *
 * Host requirements: /dev/net/tun, CAP_NET_ADMIN (effective), and iproute2's `ip` on PATH (addresses, link
 * state, routes). Without them the role says so once and runs disabled.
 */
import { accessSync, constants, readFileSync } from "node:fs";
import { CollectorError } from "../lib/errors.ts";

export interface WgHost {
  /** argv that runs `argv` where the interface should live (identity in production). */
  wrap(argv: string[]): string[];
  /** The control socket of interface `ifname`, as this process reaches it. */
  socketPath(ifname: string): string;
  /** Network namespace `ip` works in (`ip -n NAME`); null = our own. */
  netns: string | null;
  /** The TUN device whose presence is checked. */
  tunDevice: string;
}

export const systemHost: WgHost = {
  wrap: (argv) => argv,
  socketPath: (ifname) => `/var/run/wireguard/${ifname}.sock`,
  netns: null,
  tunDevice: "/dev/net/tun",
};

const CAP_NET_ADMIN = 12;

/** Why this host cannot run the interface, or null when it can. The message says what to do. */
export function hostProblem(host: WgHost, status = readProcStatus()): string | null {
  const problems: string[] = [];
  try {
    accessSync(host.tunDevice, constants.R_OK | constants.W_OK);
  } catch (err) {
    problems.push(
      `${host.tunDevice} is missing or not usable (${(err as { code?: string }).code ?? "error"}); ` +
        "load the tun module (modprobe tun) or, in a container, pass the device (--device /dev/net/tun)",
    );
  }
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (!capEff || (BigInt(`0x${capEff}`) & (1n << BigInt(CAP_NET_ADMIN))) === 0n) {
    problems.push(
      "the process lacks CAP_NET_ADMIN; grant it (systemd: AmbientCapabilities=CAP_NET_ADMIN, " +
        "container: --cap-add NET_ADMIN)",
    );
  }
  if (!Bun.which("ip")) {
    problems.push("iproute2's `ip` command is not on PATH; install it (apt-get install iproute2)");
  }
  return problems.length ? problems.join("; ") : null;
}

function readProcStatus(): string {
  try {
    return readFileSync("/proc/self/status", "utf8");
  } catch {
    return "";
  }
}

/** Runs `ip ARGS` (in the host's namespace); throws with ip's own message and what was attempted. */
export async function ip(host: WgHost, args: string[]): Promise<void> {
  const argv = ["ip", ...(host.netns ? ["-n", host.netns] : []), ...args];
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) {
    throw new CollectorError(
      "CHILD_FAILED",
      `\`${argv.join(" ")}\` failed (status ${code}): ${stderr.trim() || "no message"}. ` +
        "Check that no other interface or route uses these addresses (wireguard.address, wireguard.tenant_pools).",
    );
  }
}
