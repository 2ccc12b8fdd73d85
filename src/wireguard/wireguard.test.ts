/** Units of the wgmanager: keys, the control-socket text protocol, the peer diff, wg-quick files, staleness. */
import { describe, expect, test } from "bun:test";
import { Registry } from "../observability/metrics.ts";
import { overlaps, parsePrefix, within } from "./cidr.ts";
import { hostProblem, systemHost } from "./host.ts";
import { fromHex, generateKeyPair, isKey, publicKeyOf, toHex } from "./keys.ts";
import { diffPeers, PeerTable } from "./peers.ts";
import { PeerStats } from "./stats.ts";
import type { DesiredPeer, ServerInfo } from "./store.ts";
import { encodeSet, parseGet } from "./uapi.ts";
import { endpointOf, PRIVATE_KEY_PLACEHOLDER, parseWgQuick, renderPeerConfig } from "./wgquick.ts";

const peer = (n: number, key = generateKeyPair().publicKey): DesiredPeer => ({
  kind: "agent",
  id: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
  tenantId: "11111111-1111-4111-8111-111111111111",
  name: `a${n}`,
  publicKey: key,
  address: `10.200.0.${n}`,
});

describe("keys", () => {
  test("X25519 pairs in base64; the public key derives from the private one; hex round trip", () => {
    const kp = generateKeyPair();
    expect(isKey(kp.publicKey) && isKey(kp.privateKey)).toBe(true);
    expect(publicKeyOf(kp.privateKey)).toBe(kp.publicKey);
    expect(toHex(kp.publicKey)).toMatch(/^[0-9a-f]{64}$/);
    expect(fromHex(toHex(kp.publicKey))).toBe(kp.publicKey);
    expect(() => toHex("short")).toThrow(/32 bytes in base64/);
    expect(() => fromHex("zz")).toThrow(/64 hexadecimal digits/);
  });

  test("matches the RFC 7748 test vector", () => {
    // Alice's key pair from RFC 7748 section 6.1
    const priv = Buffer.from("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "hex");
    const pub = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    expect(toHex(publicKeyOf(priv.toString("base64")))).toBe(pub);
  });
});

describe("control socket protocol", () => {
  test("set: private key, port, peer removal before additions, allowed IPs replaced", () => {
    const kp = generateKeyPair();
    const a = peer(2);
    const gone = generateKeyPair().publicKey;
    const text = encodeSet({
      privateKey: kp.privateKey,
      listenPort: 51820,
      replacePeers: true,
      removePeers: [gone],
      peers: [{ publicKey: a.publicKey, allowedIps: ["10.200.0.2/32"], persistentKeepalive: 25 }],
    });
    expect(text).toBe(
      [
        "set=1",
        `private_key=${toHex(kp.privateKey)}`,
        "listen_port=51820",
        "replace_peers=true",
        `public_key=${toHex(gone)}`,
        "remove=true",
        `public_key=${toHex(a.publicKey)}`,
        "replace_allowed_ips=true",
        "allowed_ip=10.200.0.2/32",
        "persistent_keepalive_interval=25",
        "",
        "",
      ].join("\n"),
    );
  });

  test("get: device and per-peer fields; an error errno throws", () => {
    const a = generateKeyPair().publicKey;
    const reply = [
      `private_key=${"ab".repeat(32)}`,
      "listen_port=51820",
      `public_key=${toHex(a)}`,
      "endpoint=10.250.0.2:40000",
      "last_handshake_time_sec=1700000000",
      "last_handshake_time_nsec=5",
      "tx_bytes=100",
      "rx_bytes=200",
      "persistent_keepalive_interval=0",
      "allowed_ip=10.200.0.2/32",
      "errno=0",
      "",
      "",
    ].join("\n");
    expect(parseGet(reply)).toEqual({
      listenPort: 51820,
      hasPrivateKey: true,
      peers: [
        {
          publicKey: a,
          endpoint: "10.250.0.2:40000",
          allowedIps: ["10.200.0.2/32"],
          lastHandshake: 1700000000,
          rxBytes: 200,
          txBytes: 100,
          persistentKeepalive: 0,
        },
      ],
    });
    expect(() => parseGet("errno=1\n\n")).toThrow(/errno=1/);
  });
});

describe("peer diff and table", () => {
  test("adds missing peers, fixes changed addresses, removes peers the database no longer has", () => {
    const [a, b, c] = [peer(2), peer(3), peer(4)];
    const stray = generateKeyPair().publicKey;
    const actual = [
      { publicKey: a.publicKey, allowedIps: ["10.200.0.2/32"] },
      { publicKey: b.publicKey, allowedIps: ["10.200.0.99/32"] },
      { publicKey: stray, allowedIps: ["10.200.0.50/32"] },
    ].map((p) => ({
      ...p,
      endpoint: null,
      lastHandshake: 0,
      rxBytes: 0,
      txBytes: 0,
      persistentKeepalive: 0,
    }));
    const d = diffPeers(actual, [a, b, c]);
    expect(d.remove).toEqual([stray]);
    expect(d.set.map((p) => p.address)).toEqual(["10.200.0.3", "10.200.0.4"]);
  });

  test("a principal's new key replaces its old entry; the staleness clock survives an unchanged re-put", () => {
    const t = new PeerTable();
    const a = peer(2);
    t.put(a, 1000);
    t.put(a, 5000);
    expect(t.get(a.publicKey)?.addedAt).toBe(1000);
    const rekeyed = { ...a, publicKey: generateKeyPair().publicKey };
    t.put(rekeyed, 6000);
    expect(t.size).toBe(1);
    expect(t.get(a.publicKey)).toBeUndefined();
    expect(t.ofPrincipal("agent", a.id)?.publicKey).toBe(rekeyed.publicKey);
    expect(t.remove(rekeyed.publicKey)?.id).toBe(a.id);
    expect(t.ofPrincipal("agent", a.id)).toBeUndefined();
  });
});

describe("staleness", () => {
  test("stale after the threshold counted from the add until the first handshake, once per transition", () => {
    const stats = new PeerStats(new Registry(), 300_000);
    const t = new PeerTable();
    const a = peer(2);
    t.put(a, 0);
    const status = (hs: number) => ({
      listenPort: 1,
      hasPrivateKey: true,
      peers: [
        {
          publicKey: a.publicKey,
          endpoint: null,
          allowedIps: [],
          lastHandshake: hs,
          rxBytes: 0,
          txBytes: 0,
          persistentKeepalive: 0,
        },
      ],
    });
    expect(stats.update(t.all(), status(0), 299_000)).toEqual([]);
    const [stale] = stats.update(t.all(), status(0), 301_000);
    expect(stale).toMatchObject({
      type: "wireguard.handshake_stale",
      last_handshake: null,
      stale_for_seconds: 301,
    });
    expect(stats.update(t.all(), status(0), 400_000)).toEqual([]); // reported once
    const [back] = stats.update(t.all(), status(350), 400_000);
    expect(back?.type).toBe("wireguard.handshake_recovered");
    expect(stats.report(t.all()[0] as never).stale).toBe(false);
  });

  test("traffic counters keep increasing across a wireguard-go restart", () => {
    const reg = new Registry();
    const stats = new PeerStats(reg, 300_000);
    const t = new PeerTable();
    const a = peer(2);
    t.put(a, 0);
    const dev = (rx: number) => ({
      listenPort: 1,
      hasPrivateKey: true,
      peers: [
        {
          publicKey: a.publicKey,
          endpoint: null,
          allowedIps: [],
          lastHandshake: 1,
          rxBytes: rx,
          txBytes: 0,
          persistentKeepalive: 0,
        },
      ],
    });
    stats.update(t.all(), dev(1000), 1);
    stats.update(t.all(), dev(300), 2); // restarted: counters began again at 0
    expect(reg.render()).toMatch(/secumon_wireguard_peer_receive_bytes_total\{[^}]*\} 1300/);
  });
});

describe("wg-quick files and host checks", () => {
  const server: ServerInfo = {
    interface: "wg-secumon",
    publicKey: generateKeyPair().publicKey,
    nextPublicKey: null,
    rotateAt: null,
    previousPublicKey: null,
    rotatedAt: null,
    endpoint: "vpn.example.com",
    listenPort: 51820,
    address: "10.200.0.1/16",
    pool: "10.200.0.0/16",
    allowedIps: ["10.200.0.1/32"],
    persistentKeepalive: 25,
  };

  test("a peer config round-trips through the parser and never holds a private key", () => {
    const text = renderPeerConfig(peer(7), server);
    const [iface, p] = parseWgQuick(text);
    expect(iface?.values).toEqual({ PrivateKey: [PRIVATE_KEY_PLACEHOLDER], Address: ["10.200.0.7/32"] });
    expect(p?.values).toEqual({
      PublicKey: [server.publicKey],
      AllowedIPs: ["10.200.0.1/32"],
      Endpoint: ["vpn.example.com:51820"],
      PersistentKeepalive: ["25"],
    });
  });

  test("endpoints: host gets the listen port, host:port and [v6]:port are kept, empty is flagged", () => {
    expect(endpointOf({ endpoint: "1.2.3.4:4500", listenPort: 51820 })).toBe("1.2.3.4:4500");
    expect(endpointOf({ endpoint: "2001:db8::1", listenPort: 51820 })).toBe("[2001:db8::1]:51820");
    expect(endpointOf({ endpoint: "", listenPort: 51820 })).toBeNull();
    expect(renderPeerConfig(peer(7), { ...server, endpoint: "" })).toContain(
      "no wireguard.endpoint configured",
    );
  });

  test("prefix arithmetic", () => {
    const p = (s: string) => parsePrefix(s) as NonNullable<ReturnType<typeof parsePrefix>>;
    expect(within(p("10.200.5.0/24"), p("10.200.0.0/16"))).toBe(true);
    expect(within(p("10.201.0.0/24"), p("10.200.0.0/16"))).toBe(false);
    expect(overlaps(p("10.0.0.0/8"), p("10.201.0.0/24"))).toBe(true);
    expect(parsePrefix("10.0.0.300/8")).toBeNull();
  });

  test("a host without CAP_NET_ADMIN or the TUN device is reported with what to do", () => {
    const problem = hostProblem(
      { ...systemHost, tunDevice: "/nonexistent/tun" },
      "CapEff:\t0000000000000000\n",
    );
    expect(problem).toContain("/nonexistent/tun is missing or not usable (ENOENT); load the tun module");
    expect(problem).toContain("lacks CAP_NET_ADMIN; grant it (systemd: AmbientCapabilities=CAP_NET_ADMIN");
  });
});
