/**
 * A two-namespace WireGuard lab for tests and the benchmark, entirely inside namespaces it creates:
 *   <id>-c  the collector side (its wireguard-go in a private mount namespace with its own /run)
 *   <id>-p  a device (agent/probe) with its own wireguard-go, configured from a wg-quick file
 * joined by a veth pair 10.250.0.1/30 ↔ 10.250.0.2/30 that exists only inside them: nothing leaves the machine.
 * wireguard-go's control socket directory is not per network namespace, hence the mount namespaces; this
 * process reaches each socket through /proc/<holder>/root.
 */
import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { WgHost } from "../../src/wireguard/host.ts";
import { Uapi } from "../../src/wireguard/uapi.ts";
import { PRIVATE_KEY_PLACEHOLDER, parseWgQuick } from "../../src/wireguard/wgquick.ts";

export const COLLECTOR_VETH_IP = "10.250.0.1";
const ECHO = join(import.meta.dir, "echo.ts");

function run(argv: string[]): { code: number; out: string } {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: `${r.stdout.toString()}${r.stderr.toString()}`.trim() };
}

function must(argv: string[]): void {
  const r = run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed: ${r.out}`);
}

/** Why this machine cannot run the lab, or null. */
export function labUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root to create network namespaces";
  try {
    accessSync("/dev/net/tun", constants.R_OK | constants.W_OK);
  } catch {
    return "/dev/net/tun is missing";
  }
  for (const tool of ["ip", "nsenter", "unshare"])
    if (!Bun.which(tool)) return `\`${tool}\` is not installed`;
  const probe = `swgprobe${process.pid}`;
  const r = run(["ip", "netns", "add", probe]);
  if (r.code !== 0) return `cannot create network namespaces here (${r.out})`;
  run(["ip", "netns", "del", probe]);
  return null;
}

/** A private mount namespace held open by a sleeping process, with a tmpfs on /run. */
class MountNs {
  readonly holder: Subprocess;
  constructor() {
    this.holder = Bun.spawn(["unshare", "--mount", "--propagation", "private", "sleep", "900"], {
      stdio: ["ignore", "ignore", "ignore"],
    });
  }
  async ready(): Promise<void> {
    // the holder has unshared once its mount namespace differs from ours
    const ours = run(["readlink", "/proc/self/ns/mnt"]).out;
    for (let i = 0; i < 100; i++) {
      const theirs = run(["readlink", `/proc/${this.holder.pid}/ns/mnt`]).out;
      if (
        theirs &&
        theirs !== ours &&
        run(["readlink", `/proc/${this.holder.pid}/exe`]).out.endsWith("sleep")
      )
        break;
      await Bun.sleep(20);
    }
    must([
      "nsenter",
      "-t",
      String(this.holder.pid),
      "-m",
      "mount",
      "-t",
      "tmpfs",
      "-o",
      "size=1m,mode=0755",
      "tmpfs",
      "/run",
    ]);
  }
  enter(netns: string, argv: string[]): string[] {
    return ["nsenter", "-t", String(this.holder.pid), "-m", `--net=/run/netns/${netns}`, "--", ...argv];
  }
  socket(ifname: string): string {
    return `/proc/${this.holder.pid}/root/run/wireguard/${ifname}.sock`;
  }
}

export class Lab {
  readonly c: string;
  readonly p: string;
  private readonly mounts: MountNs[] = [];
  private readonly procs: Subprocess[] = [];

  constructor(id = `swg${process.pid % 100000}`) {
    this.c = `${id}-c`;
    this.p = `${id}-p`;
  }

  async up(): Promise<void> {
    for (const ns of [this.c, this.p]) {
      run(["ip", "netns", "del", ns]); // leftover of a killed run
      must(["ip", "netns", "add", ns]);
      must(["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    must([
      "ip",
      "-n",
      this.c,
      "link",
      "add",
      "veth-c",
      "type",
      "veth",
      "peer",
      "name",
      "veth-p",
      "netns",
      this.p,
    ]);
    must(["ip", "-n", this.c, "address", "add", `${COLLECTOR_VETH_IP}/30`, "dev", "veth-c"]);
    must(["ip", "-n", this.p, "address", "add", "10.250.0.2/30", "dev", "veth-p"]);
    must(["ip", "-n", this.c, "link", "set", "veth-c", "up"]);
    must(["ip", "-n", this.p, "link", "set", "veth-p", "up"]);
  }

  /** Where the collector's wireguard-go runs: namespace c, a private /run. */
  async collectorHost(): Promise<WgHost> {
    const m = new MountNs();
    this.mounts.push(m);
    await m.ready();
    return {
      wrap: (argv) => m.enter(this.c, argv),
      socketPath: (i) => m.socket(i),
      netns: this.c,
      tunDevice: "/dev/net/tun",
    };
  }

  /** Starts a device in namespace p from a wg-quick file (the placeholder replaced by `privateKey`). */
  async device(binary: string, wgQuick: string, privateKey: string, ifname = "wg-dev"): Promise<Device> {
    const m = new MountNs();
    this.mounts.push(m);
    await m.ready();
    const proc = Bun.spawn(m.enter(this.p, [binary, "-f", ifname]), {
      env: { ...process.env, WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "error" },
      stdio: ["ignore", "ignore", "inherit"],
    });
    this.procs.push(proc);
    const uapi = new Uapi(m.socket(ifname));
    for (let i = 0; i < 200; i++) {
      if (
        await uapi.get().then(
          () => true,
          () => false,
        )
      )
        break;
      await Bun.sleep(25);
    }
    const dev = new Device(this.p, ifname, uapi, proc);
    await dev.apply(wgQuick, privateKey);
    return dev;
  }

  /** TCP echo server inside namespace c on `host:port`. */
  async echoServer(host: string, port: number): Promise<void> {
    const proc = Bun.spawn(
      ["nsenter", `--net=/run/netns/${this.c}`, "--", process.execPath, ECHO, "serve", host, String(port)],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    this.procs.push(proc);
    const reader = proc.stdout.getReader();
    await reader.read(); // "listening"
    reader.releaseLock();
  }

  /** True when a TCP round trip from namespace p to host:port succeeds within `ms`. */
  async reach(host: string, port: number, ms = 2000): Promise<boolean> {
    const proc = Bun.spawn(
      [
        "nsenter",
        `--net=/run/netns/${this.p}`,
        "--",
        process.execPath,
        ECHO,
        "probe",
        host,
        String(port),
        String(ms),
      ],
      {
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
    return (await proc.exited) === 0;
  }

  /** True when `ping` from namespace p gets an ICMP echo reply from host (iputils-ping, see scripts/setup.sh). */
  async ping(host: string): Promise<boolean> {
    const proc = Bun.spawn(["ip", "netns", "exec", this.p, "ping", "-c", "1", "-W", "2", host], {
      stdio: ["ignore", "ignore", "ignore"],
    });
    return (await proc.exited) === 0;
  }

  async down(): Promise<void> {
    for (const p of this.procs.splice(0)) {
      p.kill("SIGTERM");
      await Promise.race([p.exited, Bun.sleep(3000)]);
      if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    }
    for (const m of this.mounts.splice(0)) {
      m.holder.kill("SIGKILL");
      await m.holder.exited;
    }
    for (const ns of [this.c, this.p]) run(["ip", "netns", "del", ns]);
  }
}

export class Device {
  constructor(
    readonly netns: string,
    readonly ifname: string,
    readonly uapi: Uapi,
    readonly proc: Subprocess,
  ) {}

  /** Configures the device as wg-quick would from this file. */
  async apply(wgQuick: string, privateKey: string): Promise<void> {
    const sections = parseWgQuick(wgQuick);
    const iface = sections.find((s) => s.section === "Interface")?.values ?? {};
    const peer = sections.find((s) => s.section === "Peer")?.values ?? {};
    if (iface.PrivateKey?.[0] !== PRIVATE_KEY_PLACEHOLDER)
      throw new Error("config lacks the private key placeholder");
    const allowed = peer.AllowedIPs ?? [];
    await this.uapi.set({
      privateKey,
      replacePeers: true,
      peers: [
        {
          publicKey: peer.PublicKey?.[0] ?? "",
          allowedIps: allowed,
          endpoint: peer.Endpoint?.[0],
          persistentKeepalive: Number(peer.PersistentKeepalive?.[0] ?? 0),
        },
      ],
    });
    for (const a of iface.Address ?? [])
      must(["ip", "-n", this.netns, "address", "replace", a, "dev", this.ifname]);
    must(["ip", "-n", this.netns, "link", "set", this.ifname, "up"]);
    for (const a of allowed) must(["ip", "-n", this.netns, "route", "replace", a, "dev", this.ifname]);
  }
}
