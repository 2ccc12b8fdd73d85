/**
 * Per-peer observability: handshake age and traffic from the interface (UAPI get), exported on /metrics, and
 * the staleness judgement — a peer with no handshake for `staleAfterMs` (counted from when it was added, until
 * its first handshake) is stale. Transitions (stale, recovered) are returned as events, once each.
 */
import type { Registry } from "../observability/metrics.ts";
import type { AppliedPeer } from "./peers.ts";
import type { DeviceStatus, PeerStatus } from "./uapi.ts";

export interface PeerReport {
  kind: AppliedPeer["kind"];
  id: string;
  tenant_id: string;
  name: string;
  public_key: string;
  address: string;
  endpoint: string | null;
  last_handshake: string | null;
  rx_bytes: number;
  tx_bytes: number;
  stale: boolean;
}

export interface StaleEvent {
  type: "wireguard.handshake_stale" | "wireguard.handshake_recovered";
  kind: AppliedPeer["kind"];
  id: string;
  tenant_id: string;
  public_key: string;
  address: string;
  last_handshake: string | null;
  /** seconds without a handshake (0 for recovered) */
  stale_for_seconds: number;
  at: string;
}

type PeerLabels = "kind" | "id" | "tenant";

export class PeerStats {
  private readonly lastSeen = new Map<string, PeerStatus>();
  private readonly staleKeys = new Set<string>();
  private readonly counted = new Map<string, { rx: number; tx: number }>();
  private readonly handshake;
  private readonly rx;
  private readonly tx;
  private readonly peersGauge;
  private readonly staleGauge;

  constructor(
    metrics: Registry,
    private readonly staleAfterMs: number,
  ) {
    this.handshake = metrics.gauge<PeerLabels>({
      name: "secumon_wireguard_peer_last_handshake_timestamp_seconds",
      help: "Unix time of the peer's last WireGuard handshake (0 = none yet).",
      labelNames: ["kind", "id", "tenant"],
    });
    this.rx = metrics.counter<PeerLabels>({
      name: "secumon_wireguard_peer_receive_bytes_total",
      help: "Bytes received from the peer through the tunnel.",
      labelNames: ["kind", "id", "tenant"],
    });
    this.tx = metrics.counter<PeerLabels>({
      name: "secumon_wireguard_peer_transmit_bytes_total",
      help: "Bytes sent to the peer through the tunnel.",
      labelNames: ["kind", "id", "tenant"],
    });
    this.peersGauge = metrics.gauge({
      name: "secumon_wireguard_peers",
      help: "Peers configured on the collector's WireGuard interface.",
    });
    this.staleGauge = metrics.gauge({
      name: "secumon_wireguard_peers_stale",
      help: "Peers with no handshake for longer than wireguard.handshake_stale_after.",
    });
  }

  /** Takes a fresh reading of the interface; returns the staleness transitions since the last one. */
  update(peers: AppliedPeer[], device: DeviceStatus, nowMs: number): StaleEvent[] {
    const status = new Map(device.peers.map((p) => [p.publicKey, p]));
    const events: StaleEvent[] = [];
    const live = new Set<string>();
    for (const peer of peers) {
      live.add(peer.publicKey);
      const s = status.get(peer.publicKey);
      if (!s) continue;
      this.lastSeen.set(peer.publicKey, s);
      const labels = labelsOf(peer);
      this.handshake.set(labels, s.lastHandshake);
      const prev = this.counted.get(peer.publicKey) ?? { rx: 0, tx: 0 };
      // counters restart at 0 when wireguard-go restarts: count the new value as the increase
      this.rx.inc(labels, s.rxBytes >= prev.rx ? s.rxBytes - prev.rx : s.rxBytes);
      this.tx.inc(labels, s.txBytes >= prev.tx ? s.txBytes - prev.tx : s.txBytes);
      this.counted.set(peer.publicKey, { rx: s.rxBytes, tx: s.txBytes });

      const since = Math.max(s.lastHandshake * 1000, peer.addedAt);
      const staleFor = nowMs - since;
      const stale = staleFor > this.staleAfterMs;
      const was = this.staleKeys.has(peer.publicKey);
      if (stale !== was) {
        if (stale) this.staleKeys.add(peer.publicKey);
        else this.staleKeys.delete(peer.publicKey);
        events.push({
          type: stale ? "wireguard.handshake_stale" : "wireguard.handshake_recovered",
          kind: peer.kind,
          id: peer.id,
          tenant_id: peer.tenantId,
          public_key: peer.publicKey,
          address: peer.address,
          last_handshake: s.lastHandshake ? new Date(s.lastHandshake * 1000).toISOString() : null,
          stale_for_seconds: stale ? Math.round(staleFor / 1000) : 0,
          at: new Date(nowMs).toISOString(),
        });
      }
    }
    for (const key of [...this.lastSeen.keys()]) if (!live.has(key)) this.lastSeen.delete(key);
    this.peersGauge.set(peers.length);
    this.staleGauge.set([...this.staleKeys].filter((k) => live.has(k)).length);
    return events;
  }

  /** Drops a removed peer's series. */
  forget(peer: AppliedPeer): void {
    const labels = labelsOf(peer);
    this.handshake.remove(labels);
    this.rx.remove(labels);
    this.tx.remove(labels);
    this.counted.delete(peer.publicKey);
    this.staleKeys.delete(peer.publicKey);
    this.lastSeen.delete(peer.publicKey);
  }

  report(peer: AppliedPeer): PeerReport {
    const s = this.lastSeen.get(peer.publicKey);
    return {
      kind: peer.kind,
      id: peer.id,
      tenant_id: peer.tenantId,
      name: peer.name,
      public_key: peer.publicKey,
      address: peer.address,
      endpoint: s?.endpoint ?? null,
      last_handshake: s?.lastHandshake ? new Date(s.lastHandshake * 1000).toISOString() : null,
      rx_bytes: s?.rxBytes ?? 0,
      tx_bytes: s?.txBytes ?? 0,
      stale: this.staleKeys.has(peer.publicKey),
    };
  }

  setPeerCount(n: number): void {
    this.peersGauge.set(n);
  }
}

const labelsOf = (p: AppliedPeer) => ({ kind: p.kind, id: p.id, tenant: p.tenantId });
