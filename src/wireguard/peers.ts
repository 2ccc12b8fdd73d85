/**
 * The peer table the wgmanager keeps in memory (what it applied to the interface, by public key and by
 * principal) and the pure diff between the database's desired set and the interface's actual set.
 */

import type { DesiredPeer, PeerKind } from "./store.ts";
import type { DeviceConfig, PeerStatus } from "./uapi.ts";

export interface AppliedPeer extends DesiredPeer {
  /** clock ms when the peer was (re)added: the start of its staleness clock until the first handshake */
  addedAt: number;
}

export const principalKey = (kind: PeerKind, id: string) => `${kind}:${id}`;

export const allowedIpsOf = (p: DesiredPeer) => [`${p.address}/32`];

/** What to change so that the interface holding `actual` holds exactly `desired`. */
export function diffPeers(
  actual: PeerStatus[],
  desired: DesiredPeer[],
): { set: DesiredPeer[]; remove: string[] } {
  const have = new Map(actual.map((p) => [p.publicKey, p]));
  const want = new Map(desired.map((p) => [p.publicKey, p]));
  const remove = actual.filter((p) => !want.has(p.publicKey)).map((p) => p.publicKey);
  const set = desired.filter((p) => {
    const cur = have.get(p.publicKey);
    return !cur || cur.allowedIps.join(",") !== allowedIpsOf(p).join(",");
  });
  return { set, remove };
}

export function toDeviceConfig(change: { set: DesiredPeer[]; remove: string[] }): DeviceConfig {
  return {
    removePeers: change.remove,
    peers: change.set.map((p) => ({ publicKey: p.publicKey, allowedIps: allowedIpsOf(p) })),
  };
}

export class PeerTable {
  private readonly byKey = new Map<string, AppliedPeer>();
  private readonly byPrincipal = new Map<string, AppliedPeer>();

  get size(): number {
    return this.byKey.size;
  }

  all(): AppliedPeer[] {
    return [...this.byKey.values()];
  }

  get(publicKey: string): AppliedPeer | undefined {
    return this.byKey.get(publicKey);
  }

  ofPrincipal(kind: PeerKind, id: string): AppliedPeer | undefined {
    return this.byPrincipal.get(principalKey(kind, id));
  }

  put(p: DesiredPeer, now: number): void {
    const prev = this.byKey.get(p.publicKey);
    const same = prev && prev.address === p.address && prev.kind === p.kind && prev.id === p.id;
    const old = this.byPrincipal.get(principalKey(p.kind, p.id));
    if (old && old.publicKey !== p.publicKey) this.byKey.delete(old.publicKey);
    const applied = { ...p, addedAt: same ? prev.addedAt : now };
    this.byKey.set(p.publicKey, applied);
    this.byPrincipal.set(principalKey(p.kind, p.id), applied);
  }

  remove(publicKey: string): AppliedPeer | undefined {
    const p = this.byKey.get(publicKey);
    if (!p) return undefined;
    this.byKey.delete(publicKey);
    if (this.byPrincipal.get(principalKey(p.kind, p.id))?.publicKey === publicKey) {
      this.byPrincipal.delete(principalKey(p.kind, p.id));
    }
    return p;
  }

  clear(): void {
    this.byKey.clear();
    this.byPrincipal.clear();
  }
}
