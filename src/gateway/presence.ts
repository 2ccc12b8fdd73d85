/**
 * Last-seen and online/offline of every agent and probe this gateway talks to. Kept in memory; written through
 * to agents/probes.last_seen and .status in batched UPDATEs (at most one per principal per write interval,
 * immediately on a status change), never overwriting revoked/disabled. Status changes are published on the
 * EVENTS stream (src/bus/events.ts). A sweep also marks offline the rows still "online" whose last_seen is
 * older than offline_after (their gateway died), so the database converges whichever instance served them.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import type { Sql } from "postgres";
import { type PrincipalStatusEvent, publishPrincipalEvent } from "../bus/events.ts";
import type { Logger } from "../observability/logger.ts";
import type { Principal } from "../pki/identity.ts";
import { withAdmin } from "../storage/db.ts";
import type { Clock } from "./limits.ts";

interface Entry {
  p: Principal;
  lastSeen: number;
  streams: number;
  status: "online" | "offline";
  /** status as last written (or read) in the database */
  dbStatus: string;
  writtenSeen: number;
  writtenAt: number;
}

export interface PresenceOptions {
  sql: Sql;
  js: JetStreamClient | null;
  log: Logger;
  offlineAfterMs: number;
  writeIntervalMs: number;
  now?: Clock;
}

export class Presence {
  private readonly entries = new Map<string, Entry>();
  private readonly now: Clock;
  private timer: ReturnType<typeof setInterval> | null = null;
  private flushing: Promise<void> | null = null;
  private sweeps = 0;

  constructor(private readonly o: PresenceOptions) {
    this.now = o.now ?? Date.now;
  }

  private entry(p: Principal, dbStatus: string): Entry {
    const key = `${p.kind}:${p.id}`;
    let e = this.entries.get(key);
    if (!e) {
      e = { p, lastSeen: 0, streams: 0, status: "offline", dbStatus, writtenSeen: 0, writtenAt: 0 };
      this.entries.set(key, e);
    }
    return e;
  }

  /** A call or batch from `p` (dbStatus: its status as the gateway last read it). */
  touch(p: Principal, dbStatus = "pending"): void {
    const e = this.entry(p, dbStatus);
    e.lastSeen = this.now();
    e.status = "online";
  }

  streamOpened(p: Principal, dbStatus = "pending"): void {
    this.touch(p, dbStatus);
    this.entry(p, dbStatus).streams++;
  }

  streamClosed(p: Principal): void {
    const e = this.entries.get(`${p.kind}:${p.id}`);
    if (!e) return;
    e.streams = Math.max(0, e.streams - 1);
    e.lastSeen = this.now();
  }

  /** Forget a principal that was revoked/deleted (no more writes for it). */
  forget(p: Principal): void {
    this.entries.delete(`${p.kind}:${p.id}`);
  }

  start(tickMs = 1000): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), tickMs);
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flushing;
    // a stopping gateway's principals are not connected any more
    for (const e of this.entries.values()) {
      e.streams = 0;
      e.status = "offline";
    }
    await this.flush(true).catch((err) =>
      this.o.log.warn({ err: String(err) }, "last presence write failed"),
    );
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
    const due: Entry[] = [];
    for (const e of this.entries.values()) {
      if (e.streams === 0 && e.status === "online" && t - e.lastSeen >= this.o.offlineAfterMs)
        e.status = "offline";
      const statusChange = e.status !== e.dbStatus && !(e.status === "offline" && e.dbStatus === "pending");
      const seenDue = e.lastSeen > e.writtenSeen && (force || t - e.writtenAt >= this.o.writeIntervalMs);
      if (statusChange || seenDue) due.push(e);
    }
    const events: PrincipalStatusEvent[] = [];
    try {
      for (const kind of ["agent", "probe"] as const) {
        const batch = due.filter((e) => e.p.kind === kind);
        if (batch.length > 0) events.push(...(await this.write(kind, batch, t)));
      }
      if (++this.sweeps % 10 === 0 || force) events.push(...(await this.sweepStale()));
    } catch (err) {
      this.o.log.warn({ err: String(err) }, "could not write agent/probe last-seen; will retry");
      return;
    }
    for (const e of [...this.entries.values()]) {
      if (
        e.status === "offline" &&
        e.streams === 0 &&
        e.dbStatus !== "online" &&
        e.writtenSeen >= e.lastSeen
      ) {
        this.entries.delete(`${e.p.kind}:${e.p.id}`);
      }
    }
    await this.publish(events);
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
    for (const [kind, table] of [
      ["agent", "agents"],
      ["probe", "probes"],
    ] as const) {
      const live = [...this.entries.values()]
        .filter((e) => e.p.kind === kind && e.status === "online")
        .map((e) => e.p.id);
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
