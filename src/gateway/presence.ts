/**
 * Last-seen and online/offline of every agent and probe this gateway talks to. Kept in memory; written through
 * to agents/probes.last_seen and .status in batched UPDATEs (at most one per principal per write interval,
 * immediately on a status change), never overwriting revoked/disabled. Status changes are published on the
 * EVENTS stream (src/bus/events.ts). A sweep also marks offline the rows still "online" whose last_seen is
 * older than offline_after (their gateway died), so the database converges whichever instance served them.
 *
 * With `redis.url` (several gateways), online/offline is decided in Redis instead (presence-redis.ts): every
 * instance raises the shared last-seen of what it sees (an open stream counts as seen, refreshed every third of
 * offline_after), and each transition is claimed atomically by one instance, which writes it and publishes the
 * event — so an agent streaming through one gateway while another serves its unary calls never flaps, and an
 * agent whose gateway died goes offline through the others. A gateway that stops cleanly marks offline at once
 * the principals whose streams it held, unless another instance saw them within offline_after (the release
 * in presence-redis.ts decides that atomically, so one instance writes each). Without Redis, each instance
 * decides alone.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import type { Sql } from "postgres";
import { type PrincipalStatusEvent, publishPrincipalEvent } from "../bus/events.ts";
import type { Logger } from "../observability/logger.ts";
import type { Principal } from "../pki/identity.ts";
import { withAdmin } from "../storage/db.ts";
import type { Clock } from "./limits.ts";
import { memberOf, parseMember, type SharedPresence } from "./presence-redis.ts";

interface Entry {
  p: Principal;
  lastSeen: number;
  streams: number;
  status: "online" | "offline";
  /** status as last written (or read) in the database */
  dbStatus: string;
  writtenSeen: number;
  writtenAt: number;
  /** shared mode: seen since the last Redis update */
  dirty: boolean;
  /** shared mode: last Redis update */
  sharedAt: number;
  /** shared mode: a transition claimed in Redis, to write even if dbStatus already says so */
  force: boolean;
}

export interface PresenceOptions {
  sql: Sql;
  js: JetStreamClient | null;
  log: Logger;
  offlineAfterMs: number;
  writeIntervalMs: number;
  /** Redis-backed presence shared by several gateways (null: this instance decides alone) */
  shared?: SharedPresence | null;
  now?: Clock;
}

export class Presence {
  private readonly entries = new Map<string, Entry>();
  private readonly now: Clock;
  private timer: ReturnType<typeof setInterval> | null = null;
  private flushing: Promise<void> | null = null;
  private sweeps = 0;
  private sharedFailing = false;
  private readonly shared: SharedPresence | null;
  /** set by beginStop: the entries that held a stream when the gateway began to stop */
  private held: Set<Entry> | null = null;

  constructor(private readonly o: PresenceOptions) {
    this.now = o.now ?? Date.now;
    this.shared = o.shared ?? null;
  }

  private entry(p: Principal, dbStatus: string): Entry {
    const key = `${p.kind}:${p.id}`;
    let e = this.entries.get(key);
    if (!e) {
      e = {
        p,
        lastSeen: 0,
        streams: 0,
        status: "offline",
        dbStatus,
        writtenSeen: 0,
        writtenAt: 0,
        dirty: false,
        sharedAt: 0,
        force: false,
      };
      this.entries.set(key, e);
    }
    return e;
  }

  /** A call or batch from `p` (dbStatus: its status as the gateway last read it). */
  touch(p: Principal, dbStatus = "pending"): void {
    const e = this.entry(p, dbStatus);
    e.lastSeen = this.now();
    e.dirty = true;
    if (!this.shared) e.status = "online"; // shared: online once Redis says so (next tick)
  }

  streamOpened(p: Principal, dbStatus = "pending"): void {
    this.touch(p, dbStatus);
    this.entry(p, dbStatus).streams++;
  }

  streamClosed(p: Principal): void {
    const e = this.entries.get(`${p.kind}:${p.id}`);
    if (!e) return;
    e.streams = Math.max(0, e.streams - 1);
    if (this.held) return; // closed by this gateway's stop, not by the agent: no sighting (see stop)
    e.lastSeen = this.now();
    e.dirty = true;
  }

  /** Forget a principal that was revoked/deleted (no more writes for it). */
  forget(p: Principal): void {
    this.entries.delete(`${p.kind}:${p.id}`);
    if (this.shared && p.kind !== "collector") {
      void this.shared.forget(memberOf({ kind: p.kind, id: p.id, tenantId: p.tenantId })).catch(() => {}); // an unforgotten member only expires: offline for a revoked row is never written
    }
  }

  start(tickMs = 1000): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), tickMs);
    this.timer.unref?.();
  }

  /**
   * The gateway is about to close its streams: remembers which principals held one (they are offline once it
   * stops, unless another instance sees them), and stops counting the closes that follow as sightings.
   */
  beginStop(): void {
    if (this.held) return;
    this.held = new Set([...this.entries.values()].filter((e) => e.streams > 0));
  }

  async stop(): Promise<void> {
    this.beginStop();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flushing;
    const held = [...(this.held ?? [])].filter(
      (e): e is Entry & { p: { kind: "agent" | "probe" } } =>
        e.p.kind !== "collector" && this.entries.get(`${e.p.kind}:${e.p.id}`) === e,
    );
    for (const e of this.entries.values()) {
      e.streams = 0;
      if (!this.shared) e.status = "offline";
    }
    // shared: a stream this instance closed is no sighting; the release below decides, atomically in Redis,
    // which of those principals no other instance sees (offline now, written by this instance alone)
    for (const e of held) e.dirty = false;
    const lastWrite = (err: unknown) =>
      this.o.log.warn(
        { err: String(err) },
        "last presence write failed: the status of this gateway's agents may be stale until they reconnect; check that PostgreSQL (and Redis, if set) are reachable",
      );
    await this.flush(true).catch(lastWrite);
    if (this.shared && held.length > 0) {
      try {
        const members = held.map((e) => memberOf({ kind: e.p.kind, id: e.p.id, tenantId: e.p.tenantId }));
        const gone = new Set(await this.shared.release(members, this.now() - this.o.offlineAfterMs));
        for (const [i, e] of held.entries()) {
          if (!gone.has(members[i]!)) continue;
          e.status = "offline";
          e.force = true;
        }
        if (gone.size > 0) await this.flush(true).catch(lastWrite);
      } catch (err) {
        this.o.log.warn(
          { err: String(err), principals: held.length },
          "could not release this gateway's agents in Redis on stop; the other gateways mark them offline after offline_after",
        );
      }
    }
    await this.shared?.close();
  }

  /** Writes what is due; runs at most once at a time. */
  flush(force = false): Promise<void> {
    this.flushing ??= this.doFlush(force).finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async doFlush(force: boolean): Promise<void> {
    const t = this.now();
    const events: PrincipalStatusEvent[] = [];
    let goneElsewhere: { kind: "agent" | "probe"; ids: string[] }[] = [];
    if (this.shared) {
      try {
        goneElsewhere = await this.syncShared(t);
        if (this.sharedFailing) this.o.log.info({}, "shared presence (Redis) reachable again");
        this.sharedFailing = false;
      } catch (err) {
        // statuses wait for Redis; last-seen keeps being written below
        if (!this.sharedFailing) {
          this.o.log.warn(
            { err: String(err) },
            "cannot update the shared presence in Redis (redis.url); online/offline changes wait until it is back — check Redis",
          );
        }
        this.sharedFailing = true;
      }
    }
    const due: Entry[] = [];
    for (const e of this.entries.values()) {
      if (!this.shared && e.streams === 0 && e.status === "online" && t - e.lastSeen >= this.o.offlineAfterMs)
        e.status = "offline";
      const statusChange =
        e.force || (e.status !== e.dbStatus && !(e.status === "offline" && e.dbStatus === "pending"));
      const seenDue = e.lastSeen > e.writtenSeen && (force || t - e.writtenAt >= this.o.writeIntervalMs);
      if (statusChange || seenDue) due.push(e);
    }
    try {
      for (const kind of ["agent", "probe"] as const) {
        const batch = due.filter((e) => e.p.kind === kind);
        if (batch.length > 0) events.push(...(await this.write(kind, batch, t)));
      }
      for (const g of goneElsewhere) events.push(...(await this.writeOffline(g.kind, g.ids, t)));
      if (++this.sweeps % 10 === 0 || force) events.push(...(await this.sweepStale()));
    } catch (err) {
      this.o.log.warn({ err: String(err) }, "could not write agent/probe last-seen; will retry");
      return;
    }
    for (const e of [...this.entries.values()]) {
      const idle = this.shared
        ? !e.dirty && t - e.lastSeen >= this.o.offlineAfterMs
        : e.status === "offline" && e.dbStatus !== "online";
      if (idle && e.streams === 0 && e.writtenSeen >= e.lastSeen)
        this.entries.delete(`${e.p.kind}:${e.p.id}`);
    }
    await this.publish(events);
  }

  /**
   * Shared mode, once per tick: claims the expired members (offline), then raises the last-seen of what this
   * instance saw (and of its open streams, every third of offline_after), claiming the ones coming online.
   * Returns the offline principals this instance has no entry for (their rows are written by id).
   */
  private async syncShared(t: number): Promise<{ kind: "agent" | "probe"; ids: string[] }[]> {
    const shared = this.shared as SharedPresence;
    const cut = t - this.o.offlineAfterMs;
    const elsewhere = { agent: [] as string[], probe: [] as string[] };
    for (const m of await shared.expire(cut)) {
      const sm = parseMember(m);
      if (!sm) continue;
      const e = this.entries.get(`${sm.kind}:${sm.id}`);
      if (e && (e.streams > 0 || e.lastSeen > cut)) {
        e.dirty = true; // still alive here (a refresh was missed): put it back below, no offline written
        continue;
      }
      if (e) {
        e.status = "offline";
        e.force = true;
      } else elsewhere[sm.kind].push(sm.id);
    }
    const refreshEvery = Math.max(1000, Math.floor(this.o.offlineAfterMs / 3));
    const items: { member: string; seen: number; e: Entry }[] = [];
    for (const e of this.entries.values()) {
      if (e.p.kind === "collector") continue;
      const streamRefresh = e.streams > 0 && t - e.sharedAt >= refreshEvery;
      if (!e.dirty && !streamRefresh) continue;
      const seen = e.streams > 0 ? t : e.lastSeen;
      if (seen <= cut) continue; // too old to be online
      items.push({ member: memberOf({ kind: e.p.kind, id: e.p.id, tenantId: e.p.tenantId }), seen, e });
    }
    if (items.length > 0) {
      const came = new Set(await shared.touch(items, cut));
      for (const it of items) {
        it.e.dirty = false;
        it.e.sharedAt = t;
        if (it.e.streams > 0) it.e.lastSeen = Math.max(it.e.lastSeen, t);
        if (came.has(it.member) || it.e.status !== "online") {
          it.e.status = "online";
          it.e.force = true;
        }
      }
    }
    return (["agent", "probe"] as const)
      .filter((k) => elsewhere[k].length > 0)
      .map((k) => ({ kind: k, ids: elsewhere[k] }));
  }

  /** Shared mode: a principal that went offline while no longer talking to this instance. */
  private async writeOffline(
    kind: "agent" | "probe",
    ids: string[],
    t: number,
  ): Promise<PrincipalStatusEvent[]> {
    const table = kind === "agent" ? "agents" : "probes";
    const rows = await withAdmin(
      this.o.sql,
      (tx) => tx<{ id: string; tenant_id: string }[]>`
        update ${tx(table)} set status = 'offline'
         where id = any(${ids}::uuid[]) and status = 'online'
        returning id, tenant_id`,
    );
    const at = new Date(t).toISOString();
    return rows.map((r) => ({
      kind,
      id: r.id,
      tenant_id: r.tenant_id,
      status: "offline",
      previous: "online",
      at,
    }));
  }

  private async write(kind: "agent" | "probe", batch: Entry[], t: number): Promise<PrincipalStatusEvent[]> {
    const table = kind === "agent" ? "agents" : "probes";
    const ids = batch.map((e) => e.p.id);
    const seen = batch.map((e) => new Date(e.lastSeen || t).toISOString());
    const statuses = batch.map((e) => e.status);
    const rows = await withAdmin(
      this.o.sql,
      (tx) => tx<{ id: string; tenant_id: string; status: string; previous: string }[]>`
        with v as (
          select * from unnest(${ids}::uuid[], ${seen}::timestamptz[], ${statuses}::text[]) as v(id, seen, status)
        ), old as (
          select t.id, t.status from ${tx(table)} t join v on v.id = t.id for update
        )
        update ${tx(table)} t
           set last_seen = greatest(t.last_seen, v.seen),
               status = case when t.status in ('revoked', 'disabled') then t.status else v.status end
          from v join old on old.id = v.id
         where t.id = v.id
        returning t.id, t.tenant_id, t.status, old.status as previous`,
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    const events: PrincipalStatusEvent[] = [];
    const at = new Date(t).toISOString();
    for (const e of batch) {
      e.writtenAt = t;
      e.writtenSeen = e.lastSeen;
      e.force = false;
      const r = byId.get(e.p.id);
      if (!r) {
        e.dbStatus = "deleted";
        e.status = "offline";
        continue;
      }
      e.dbStatus = r.status;
      if (r.status !== r.previous) {
        events.push({
          kind,
          id: r.id,
          tenant_id: r.tenant_id,
          status: r.status as "online",
          previous: r.previous,
          at,
        });
      }
    }
    return events;
  }

  private async sweepStale(): Promise<PrincipalStatusEvent[]> {
    const secs = Math.ceil(this.o.offlineAfterMs / 1000);
    const at = new Date(this.now()).toISOString();
    const events: PrincipalStatusEvent[] = [];
    // shared mode: what any instance saw recently stays online (null: Redis unreachable, skip the sweep)
    let elsewhere: string[] = [];
    if (this.shared) {
      const online = await this.shared.online(this.now() - this.o.offlineAfterMs).catch(() => null);
      if (online === null) return events;
      elsewhere = online.map((m) => parseMember(m)?.id ?? "").filter(Boolean);
    }
    for (const [kind, table] of [
      ["agent", "agents"],
      ["probe", "probes"],
    ] as const) {
      const live = [...this.entries.values()]
        .filter((e) => e.p.kind === kind && e.status === "online")
        .map((e) => e.p.id)
        .concat(elsewhere);
      const rows = await withAdmin(
        this.o.sql,
        (tx) => tx<{ id: string; tenant_id: string }[]>`
          update ${tx(table)} set status = 'offline'
           where status = 'online' and (last_seen is null or last_seen < now() - make_interval(secs => ${secs}))
             and not (id = any(${live}::uuid[]))
          returning id, tenant_id`,
      );
      for (const r of rows)
        events.push({ kind, id: r.id, tenant_id: r.tenant_id, status: "offline", previous: "online", at });
    }
    return events;
  }

  private async publish(events: PrincipalStatusEvent[]): Promise<void> {
    if (!this.o.js) return;
    for (const ev of events) {
      await publishPrincipalEvent(this.o.js, ev).catch((err) =>
        this.o.log.warn({ err: String(err), id: ev.id }, "could not publish a status event"),
      );
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
