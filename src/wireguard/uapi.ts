/**
 * wireguard-go's control socket (the cross-platform userspace API, https://www.wireguard.com/xplatform/):
 * a Unix socket speaking `get=1` / `set=1` text requests of `key=value` lines ended by a blank line, answered
 * by `errno=N` and a blank line. Keys are hex on this socket. One connection per request.
 */
import { CollectorError } from "../lib/errors.ts";
import { fromHex, toHex } from "./keys.ts";

export interface PeerStatus {
  /** base64 */
  publicKey: string;
  endpoint: string | null;
  allowedIps: string[];
  /** seconds since the epoch; 0 = never */
  lastHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number;
}

export interface DeviceStatus {
  /** base64 public key derived by the device is not reported; listenPort and peers are */
  listenPort: number;
  hasPrivateKey: boolean;
  peers: PeerStatus[];
}

export interface PeerConfig {
  /** base64 */
  publicKey: string;
  allowedIps: string[];
  endpoint?: string;
  persistentKeepalive?: number;
}

export interface DeviceConfig {
  /** base64; omitted = unchanged */
  privateKey?: string;
  listenPort?: number;
  /** drop every peer not listed in this request */
  replacePeers?: boolean;
  peers?: PeerConfig[];
  /** base64 public keys of peers to remove */
  removePeers?: string[];
}

const TIMEOUT_MS = 10_000;

export class Uapi {
  constructor(readonly socketPath: string) {}

  async get(): Promise<DeviceStatus> {
    return parseGet(await this.request("get=1\n\n"));
  }

  async set(config: DeviceConfig): Promise<void> {
    const reply = await this.request(encodeSet(config));
    const errno = /^errno=(-?\d+)$/m.exec(reply)?.[1];
    if (errno !== "0") {
      throw new CollectorError(
        "INTERNAL",
        `wireguard-go refused the configuration (errno=${errno ?? "?"}); its log lines above say why`,
      );
    }
  }

  /** One request, the whole reply (up to and including the blank line that ends it). */
  request(text: string): Promise<string> {
    return new Promise((resolve, reject) => {
      let buf = "";
      let done = false;
      const finish = (err: Error | null, socket?: { end(): void }) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket?.end();
        if (err) reject(err);
        else resolve(buf);
      };
      const timer = setTimeout(
        () =>
          finish(
            new CollectorError(
              "CHILD_FAILED",
              `wireguard-go did not answer on ${this.socketPath} within ${TIMEOUT_MS} ms`,
            ),
          ),
        TIMEOUT_MS,
      );
      const decoder = new TextDecoder();
      // a large request (thousands of peers) does not fit the socket buffer: write the rest on each drain
      let out = Buffer.from(text);
      const flush = (socket: { write(b: Uint8Array): number }) => {
        while (out.length) {
          const n = socket.write(out);
          if (n <= 0) return;
          out = out.subarray(n);
        }
      };
      Bun.connect({
        unix: this.socketPath,
        socket: {
          open: flush,
          drain: flush,
          data(socket, chunk) {
            buf += decoder.decode(chunk, { stream: true });
            if (buf.endsWith("\n\n")) finish(null, socket);
          },
          close() {
            if (/errno=-?\d+\n/.test(buf)) finish(null);
            else
              finish(
                new CollectorError(
                  "CHILD_FAILED",
                  "wireguard-go closed its control socket before finishing its reply",
                ),
              );
          },
          error(_socket, err) {
            finish(err);
          },
        },
      }).catch((err: Error & { code?: string }) =>
        finish(
          new CollectorError(
            "CHILD_FAILED",
            `cannot reach wireguard-go's control socket ${this.socketPath} (${err.code ?? err.message}): ` +
              "is the wgmanager's wireguard-go running?",
            { cause: err },
          ),
        ),
      );
    });
  }
}

export function encodeSet(c: DeviceConfig): string {
  const lines = ["set=1"];
  if (c.privateKey !== undefined) lines.push(`private_key=${toHex(c.privateKey)}`);
  if (c.listenPort !== undefined) lines.push(`listen_port=${c.listenPort}`);
  if (c.replacePeers) lines.push("replace_peers=true");
  for (const key of c.removePeers ?? []) lines.push(`public_key=${toHex(key)}`, "remove=true");
  for (const p of c.peers ?? []) {
    lines.push(`public_key=${toHex(p.publicKey)}`, "replace_allowed_ips=true");
    for (const ip of p.allowedIps) lines.push(`allowed_ip=${ip}`);
    if (p.endpoint) lines.push(`endpoint=${p.endpoint}`);
    if (p.persistentKeepalive !== undefined)
      lines.push(`persistent_keepalive_interval=${p.persistentKeepalive}`);
  }
  return `${lines.join("\n")}\n\n`;
}

export function parseGet(reply: string): DeviceStatus {
  const dev: DeviceStatus = { listenPort: 0, hasPrivateKey: false, peers: [] };
  let peer: PeerStatus | null = null;
  let errno: string | null = null;
  for (const line of reply.split("\n")) {
    if (!line) continue;
    const eq = line.indexOf("=");
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    switch (key) {
      case "private_key":
        dev.hasPrivateKey = /[1-9a-f]/.test(value);
        break;
      case "listen_port":
        dev.listenPort = Number(value);
        break;
      case "public_key":
        peer = {
          publicKey: fromHex(value),
          endpoint: null,
          allowedIps: [],
          lastHandshake: 0,
          rxBytes: 0,
          txBytes: 0,
          persistentKeepalive: 0,
        };
        dev.peers.push(peer);
        break;
      case "endpoint":
        if (peer) peer.endpoint = value;
        break;
      case "allowed_ip":
        peer?.allowedIps.push(value);
        break;
      case "last_handshake_time_sec":
        if (peer) peer.lastHandshake = Number(value);
        break;
      case "rx_bytes":
        if (peer) peer.rxBytes = Number(value);
        break;
      case "tx_bytes":
        if (peer) peer.txBytes = Number(value);
        break;
      case "persistent_keepalive_interval":
        if (peer) peer.persistentKeepalive = Number(value);
        break;
      case "errno":
        errno = value;
        break;
    }
  }
  if (errno !== "0") {
    throw new CollectorError("INTERNAL", `wireguard-go answered get=1 with errno=${errno ?? "(none)"}`);
  }
  return dev;
}
