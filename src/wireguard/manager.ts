/**
 * The wgmanager service: owns the collector's WireGuard interface.
 *   start: pools from config → server row (key generated once, sealed) → wireguard-go (supervised child)
 *          → private key, port and every peer through the control socket → addresses/link/routes with `ip`
 *          → LISTEN secumon_wireguard_changed (live add/remove) → timers (full reconcile, stats, rotation).
 *   A wireguard-go that crashes is restarted by the supervisor and fully reconfigured from the database.
 *   Without /dev/net/tun, CAP_NET_ADMIN or `ip`, it logs one message and stays disabled (ready, up 0).
 * Every change to the interface goes through one queue, so live changes and full reconciles never interleave.
 */

import type { RoleContext } from "../app/role.ts";
import { executable } from "../assets/binaries.ts";
import { parseDuration } from "../config/schema.ts";
import { CollectorError, errorMessage } from "../lib/errors.ts";
import type { Service } from "../lib/lifecycle.ts";
import { listenWithResync } from "../storage/listen.ts";
import type { SupervisedChild } from "../supervisor/child.ts";
import { wireguardChild } from "../supervisor/wireguard.ts";
import { formatPrefix, hostOf, parsePrefix, within } from "./cidr.ts";
import { hostProblem, ip, systemHost, type WgHost } from "./host.ts";
import { diffPeers, PeerTable, principalKey, toDeviceConfig } from "./peers.ts";
import { type PeerReport, PeerStats, type StaleEvent } from "./stats.ts";
import { type DesiredPeer, type PeerKind, type ServerInfo, type ServerKeys, WgStore } from "./store.ts";
import { type DeviceConfig, Uapi } from "./uapi.ts";
import { renderPeerConfig } from "./wgquick.ts";

export const CHANGE_CHANNEL = "secumon_wireguard_changed";

export interface WgManagerOptions {
  host?: WgHost;
  /** ms since the epoch; tests move it */
  clock?: () => number;
  /** wireguard-go executable (default: the bundled one) */
  binary?: string;
}

export interface ReconcileResult {
  added: number;
  removed: number;
  peers: number;
  ms: number;
}

export interface WgManager extends Service {
  /** Why the interface is not running (disabled, missing capability), or null. */
  readonly disabledReason: string | null;
  readonly store: WgStore;
  reconcile(): Promise<ReconcileResult>;
  /**
   * One housekeeping tick (what the stats timer runs): completes a due key rotation, reads per-peer counters,
   * updates metrics, publishes staleness events; returns them.
   */
  pollStats(): Promise<StaleEvent[]>;
  /** wireguard-go's process id while it runs. */
  readonly pid: number | null;
  peers(): PeerReport[];
  server(): Promise<ServerInfo | null>;
  rotate(graceMs?: number): Promise<ServerInfo>;
  peerConfig(kind: PeerKind, id: string): Promise<string>;
}

export function createWgManager(ctx: RoleContext, opts: WgManagerOptions = {}): WgManager {
  const cfg = ctx.config.wireguard;
  const log = ctx.log;
  const host = opts.host ?? systemHost;
  const clock = opts.clock ?? Date.now;
  const store = new WgStore(ctx.sql, ctx.keyring);
  const table = new PeerTable();
  const stats = new PeerStats(ctx.metrics, parseDuration(cfg.handshake_stale_after));
  const up = ctx.metrics.gauge({
    name: "secumon_wireguard_up",
    help: "1 when the WireGuard interface is running and configured, 0 when disabled or down.",
  });
  const changes = ctx.metrics.counter<"op">({
    name: "secumon_wireguard_peer_changes_total",
    help: "Peers added to or removed from the interface.",
    labelNames: ["op"],
  });
  const reconcileSeconds = ctx.metrics.histogram({
    name: "secumon_wireguard_reconcile_duration_seconds",
    help: "Time to compare the interface with the database and apply the difference.",
  });
  const failures = ctx.metrics.counter<"op">({
    name: "secumon_wireguard_errors_total",
    help: "Failed WireGuard operations (reconcile, live change, stats, rotation); the log says why.",
    labelNames: ["op"],
  });

  const uapi = new Uapi(host.socketPath(cfg.interface));
  let disabledReason: string | null = null;
  let child: SupervisedChild | null = null;
  let keys: ServerKeys | null = null;
  let started = false;
  let stopped = false;
  let configured = false;
  let queue: Promise<unknown> = Promise.resolve();
  const timers: ReturnType<typeof setInterval>[] = [];
  let unlisten: (() => Promise<void>) | null = null;
  const pending = new Map<string, { kind: PeerKind; id: string }>();
  let flushTimer: ReturnType<typeof setTimeout> | null = null;

  /** Runs `fn` after every earlier interface change finished. */
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
  }

  function settings() {
    const address = cfg.address;
    return {
      interface: cfg.interface,
      endpoint: cfg.endpoint,
      listenPort: cfg.listen_port,
      address,
      pool: formatPrefix(parsePrefix(cfg.pool) ?? { network: 0, bits: 32 }),
      allowedIps: [`${hostOf(address)}/32`],
      persistentKeepalive: cfg.persistent_keepalive,
    };
  }

  async function setDevice(c: DeviceConfig): Promise<void> {
    try {
      await uapi.set(c);
    } catch (err) {
      if (c.listenPort !== undefined && /errno=-98\b/.test(errorMessage(err))) {
        throw new CollectorError(
          "PORT_IN_USE",
          `UDP port ${c.listenPort} is taken by another program: change wireguard.listen_port (SECUMON_WIREGUARD__LISTEN_PORT) or stop that program`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** Everything a fresh wireguard-go needs: key, port, all peers, then addresses, link and routes. */
  async function configureInterface(): Promise<ReconcileResult> {
    const t0 = performance.now();
    if (!keys) throw new Error("server keys not loaded");
    const desired = await store.desiredPeers();
    await setDevice({
      privateKey: keys.privateKey,
      listenPort: cfg.listen_port,
      replacePeers: true,
      peers: desired.map((p) => ({ publicKey: p.publicKey, allowedIps: [`${p.address}/32`] })),
    });
    for (const p of table.all()) stats.forget(p);
    table.clear();
    const now = clock();
    for (const p of desired) table.put(p, now);
    await ip(host, ["address", "replace", cfg.address, "dev", cfg.interface]);
    await ip(host, ["link", "set", "dev", cfg.interface, "mtu", String(cfg.mtu), "up"]);
    await addPoolRoutes();
    configured = true;
    up.set(1);
    stats.setPeerCount(table.size);
    changes.inc({ op: "add" }, desired.length);
    const ms = performance.now() - t0;
    reconcileSeconds.observe(ms / 1000);
    return { added: desired.length, removed: 0, peers: table.size, ms };
  }

  async function addPoolRoutes(): Promise<void> {
    const ifNet = parsePrefix(cfg.address);
    for (const pool of await store.pools()) {
      const p = parsePrefix(pool);
      if (!p || (ifNet && within(p, ifNet))) continue;
      await ip(host, ["route", "replace", formatPrefix(p), "dev", cfg.interface]);
    }
  }

  async function reconcileNow(): Promise<ReconcileResult> {
    const t0 = performance.now();
    const unknown = await store.syncPools(cfg.tenant_pools);
    if (unknown.length) {
      log.warn(
        { tenants: unknown },
        `wireguard.tenant_pools names tenants that do not exist (${unknown.join(", ")}); they are ignored until created`,
      );
    }
    if (!configured) return { added: 0, removed: 0, peers: 0, ms: 0 };
    await addPoolRoutes();
    const [desired, device] = await Promise.all([store.desiredPeers(), uapi.get()]);
    const diff = diffPeers(device.peers, desired);
    if (diff.set.length || diff.remove.length) await setDevice(toDeviceConfig(diff));
    applyToTable(diff.remove, diff.set);
    // peers the table believes in but the interface lacks were re-added above; drop table-only leftovers
    const want = new Set(desired.map((p) => p.publicKey));
    for (const p of table.all()) if (!want.has(p.publicKey)) stats.forget(table.remove(p.publicKey) ?? p);
    for (const p of desired) if (!table.get(p.publicKey)) table.put(p, clock());
    const ms = performance.now() - t0;
    reconcileSeconds.observe(ms / 1000);
    if (diff.set.length || diff.remove.length) {
      log.info(
        { added: diff.set.length, removed: diff.remove.length, peers: table.size, ms: Math.round(ms) },
        "WireGuard peers reconciled with the database",
      );
    }
    return { added: diff.set.length, removed: diff.remove.length, peers: table.size, ms };
  }

  function applyToTable(remove: string[], set: DesiredPeer[]): void {
    const now = clock();
    for (const key of remove) {
      const p = table.remove(key);
      if (p) stats.forget(p);
    }
    for (const p of set) {
      const old = table.ofPrincipal(p.kind, p.id);
      if (old && old.publicKey !== p.publicKey) stats.forget(old);
      table.put(p, now);
    }
    changes.inc({ op: "add" }, set.length);
    changes.inc({ op: "remove" }, remove.length);
    stats.setPeerCount(table.size);
  }

  /** Applies the current database state of some principals (from notifications). */
  async function applyPrincipals(list: { kind: PeerKind; id: string }[]): Promise<void> {
    if (!configured) return;
    const desired = await store.desiredPeersFor(list);
    const byPrincipal = new Map(desired.map((d) => [principalKey(d.kind, d.id), d]));
    const remove: string[] = [];
    const set: DesiredPeer[] = [];
    for (const k of list) {
      const old = table.ofPrincipal(k.kind, k.id);
      const d = byPrincipal.get(principalKey(k.kind, k.id));
      if (old && (!d || d.publicKey !== old.publicKey)) remove.push(old.publicKey);
      if (d && (!old || old.publicKey !== d.publicKey || old.address !== d.address)) set.push(d);
    }
    if (!remove.length && !set.length) return;
    await setDevice(toDeviceConfig({ set, remove }));
    applyToTable(remove, set);
    log.info(
      { added: set.map((p) => principalKey(p.kind, p.id)), removed: remove.length, peers: table.size },
      "WireGuard peers changed",
    );
  }

  function onNotify(payload: string): void {
    try {
      const m = JSON.parse(payload) as { kind?: string; id?: string };
      if ((m.kind !== "agent" && m.kind !== "probe") || typeof m.id !== "string") return;
      pending.set(principalKey(m.kind, m.id), { kind: m.kind, id: m.id });
    } catch {
      return;
    }
    // a burst (a tenant deleted, a bulk import) becomes one request to wireguard-go
    flushTimer ??= setTimeout(() => {
      flushTimer = null;
      const batch = [...pending.values()];
      pending.clear();
      exclusive(() => applyPrincipals(batch)).catch((err) => {
        failures.inc({ op: "live" });
        log.error(
          { err: errorMessage(err) },
          "applying a WireGuard peer change failed; the next reconcile retries",
        );
      });
    }, 20);
  }

  async function completeRotationIfDue(force = false): Promise<void> {
    const info = keys?.info;
    if (!info?.rotateAt || (!force && info.rotateAt.getTime() > clock())) return;
    const next = await store.completeRotation(force ? info.rotateAt : new Date(clock()));
    if (!next) {
      // completed elsewhere, or the grace changed: take what the database says
      await refreshKeys();
      return;
    }
    keys = next;
    if (configured) await setDevice({ privateKey: next.privateKey });
    log.info(
      { publicKey: next.info.publicKey, previousPublicKey: next.info.previousPublicKey },
      "WireGuard key rotation completed: the interface now uses the new key",
    );
  }

  async function refreshKeys(): Promise<void> {
    const fresh = await store.ensureServer(settings());
    const changed = fresh.info.publicKey !== keys?.info.publicKey;
    keys = fresh;
    if (changed && configured) await setDevice({ privateKey: fresh.privateKey });
  }

  async function pollStats(): Promise<StaleEvent[]> {
    if (!configured) return [];
    await exclusive(() => completeRotationIfDue());
    const device = await uapi.get();
    const events = stats.update(table.all(), device, clock());
    for (const e of events) {
      const stale = e.type === "wireguard.handshake_stale";
      log[stale ? "warn" : "info"](
        { kind: e.kind, id: e.id, tenant: e.tenant_id, staleForSeconds: e.stale_for_seconds },
        stale
          ? `WireGuard ${e.kind} ${e.id} has had no handshake for ${e.stale_for_seconds} s`
          : `WireGuard ${e.kind} ${e.id} handshakes again`,
      );
      ctx.nats?.publish(`secumon.events.wireguard.${e.tenant_id}.${e.id}`, JSON.stringify(e));
    }
    return events;
  }

  function every(ms: number, op: string, fn: () => Promise<unknown>): void {
    const t = setInterval(() => {
      if (stopped) return;
      fn().catch((err) => {
        failures.inc({ op });
        log.error(
          { err: errorMessage(err) },
          `WireGuard ${op} failed; retrying in ${Math.round(ms / 1000)} s`,
        );
      });
    }, ms);
    t.unref?.();
    timers.push(t);
  }

  async function start(): Promise<void> {
    if (started) return;
    started = true;
    stopped = false;
    up.set(0);
    if (!cfg.enabled) {
      disabledReason = "WireGuard is disabled (wireguard.enabled: false)";
      log.info("WireGuard is off (wireguard.enabled: false); the wgmanager role has nothing to run");
      return;
    }
    const problem = hostProblem(host);
    if (problem) {
      disabledReason = `WireGuard cannot run on this host: ${problem}`;
      log.warn(
        { reason: problem },
        `WireGuard tunnel disabled: ${problem}. Everything else keeps running; agents and probes connect without the tunnel.`,
      );
      return;
    }
    await reconcileNow(); // pools first: enrollment may allocate before the interface is up
    keys = await store.ensureServer(settings());
    await completeRotationIfDue();
    const binary = opts.binary ?? (await executable("wireguard-go", ctx.dataDir));
    const c = wireguardChild(
      { binary, ifname: cfg.interface, socketPath: uapi.socketPath, wrap: host.wrap },
      {
        initialMs: parseDuration(ctx.config.supervisor.restart_backoff_initial),
        maxMs: parseDuration(ctx.config.supervisor.restart_backoff_max),
        resetAfterMs: 60_000,
      },
      log.child({ component: "supervisor" }),
      {
        onStateChange: (_name, isUp) => {
          if (!isUp) {
            configured = false;
            up.set(0);
            return;
          }
          // a restart after a crash: the new interface knows nothing yet
          if (keys && started && !stopped && child) {
            exclusive(configureInterface)
              .then((r) =>
                log.info({ peers: r.peers }, "WireGuard interface reconfigured after wireguard-go restarted"),
              )
              .catch((err) => {
                failures.inc({ op: "configure" });
                log.error({ err: errorMessage(err) }, "reconfiguring WireGuard after a restart failed");
              });
          }
        },
      },
    );
    await c.start();
    child = c;
    const r = await exclusive(configureInterface);
    log.info(
      {
        interface: cfg.interface,
        listenPort: cfg.listen_port,
        address: cfg.address,
        publicKey: keys.info.publicKey,
        peers: r.peers,
        ms: Math.round(r.ms),
      },
      `WireGuard interface ${cfg.interface} up on UDP ${cfg.listen_port} with ${r.peers} peers`,
    );
    // changes made while the listener was reconnecting are caught by a full reconcile
    unlisten = await listenWithResync(ctx.sql, CHANGE_CHANNEL, onNotify, () => {
      exclusive(reconcileNow).catch((err) =>
        log.error({ err: errorMessage(err) }, "WireGuard reconcile failed"),
      );
    });
    every(parseDuration(cfg.reconcile_interval), "reconcile", async () => {
      await exclusive(async () => {
        await refreshKeys();
        await reconcileNow();
      });
    });
    every(parseDuration(cfg.stats_interval), "stats", pollStats);
  }

  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    for (const t of timers.splice(0)) clearInterval(t);
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = null;
    await unlisten?.().catch(() => {});
    unlisten = null;
    await queue;
    configured = false;
    await child?.stop();
    child = null;
    up.set(0);
    started = false;
  }

  return {
    name: "wgmanager",
    start,
    stop,
    readiness: () => {
      if (disabledReason || !started || !child) return null;
      return child.readiness();
    },
    get disabledReason() {
      return disabledReason;
    },
    get pid() {
      return child?.pid ?? null;
    },
    store,
    reconcile: () => exclusive(reconcileNow),
    pollStats,
    peers: () => table.all().map((p) => stats.report(p)),
    server: () => store.server(),
    async rotate(graceMs = parseDuration(cfg.key_rotation_grace)) {
      const info = await store.beginRotation(graceMs);
      if (keys) keys = { ...keys, info };
      log.info(
        { nextPublicKey: info.nextPublicKey, rotateAt: info.rotateAt?.toISOString() },
        "WireGuard key rotation started: the new key is announced now and used from rotate_at",
      );
      if (graceMs === 0) await exclusive(() => completeRotationIfDue(true));
      return (await store.server()) ?? info;
    },
    async peerConfig(kind, id) {
      const [server, peer] = await Promise.all([store.server(), store.principal(kind, id)]);
      if (!server) {
        throw new CollectorError(
          "CONFLICT",
          "WireGuard has not been set up yet: enable it (wireguard.enabled) and start the wgmanager role",
        );
      }
      if (!peer) {
        throw new CollectorError(
          "NOT_FOUND",
          `${kind} ${id} has no WireGuard tunnel: it must enroll with a WireGuard public key first`,
        );
      }
      return renderPeerConfig(peer, server, peer.status);
    },
  };
}
