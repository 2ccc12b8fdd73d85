/**
 * The maintenance role: one instance at a time does the work (a session-level PostgreSQL advisory lock held on
 * a reserved connection; the others retry every 15 s and take over within that when the holder stops or its
 * connection dies). The holder ensures partitions and applies retention every 10 minutes and refreshes the
 * rollups every minute (jobs.ts).
 */

import type { ReservedSql } from "postgres";
import type { RoleContext } from "../app/role.ts";
import { parseDuration } from "../config/schema.ts";
import type { Service } from "../lib/lifecycle.ts";
import { applyRetention, ensurePartitions, type RetentionSettings, refreshRollups } from "./jobs.ts";

/** pg_advisory_lock key of the maintenance leader: ASCII "secumnt" read as a big-endian integer. */
export const MAINTENANCE_LOCK_KEY = "32481100167999092";

export interface MaintenanceTimings {
  rollupEveryMs: number;
  housekeepingEveryMs: number;
  leaderRetryMs: number;
}

export function createMaintenance(
  ctx: RoleContext,
  timings: MaintenanceTimings = {
    rollupEveryMs: 60_000,
    housekeepingEveryMs: 600_000,
    leaderRetryMs: 15_000,
  },
  now: () => number = Date.now,
): Service & { isLeader(): boolean } {
  const log = ctx.log;
  const r = ctx.config.retention;
  const settings: RetentionSettings = {
    rawMs: parseDuration(r.raw),
    rollup5mMs: parseDuration(r.rollup_5m),
    rollup1hMs: parseDuration(r.rollup_1h),
    logsMs: parseDuration(r.logs),
    dedupMs: parseDuration(ctx.config.nats.stream_max_age) + 86_400_000,
  };
  const runs = ctx.metrics.counter<"job" | "outcome">({
    name: "secumon_maintenance_runs_total",
    help: "Maintenance job runs by job (partitions, retention, rollups) and outcome (ok, error).",
    labelNames: ["job", "outcome"],
  });
  const leaderGauge = ctx.metrics.gauge({
    name: "secumon_maintenance_leader",
    help: "1 while this instance holds the maintenance lock and runs the jobs.",
  });
  const dropped = ctx.metrics.counter({
    name: "secumon_maintenance_partitions_dropped_total",
    help: "Telemetry partitions dropped past their retention.",
  });

  let conn: ReservedSql | null = null;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let running: Promise<void> | null = null;
  let lastHousekeeping = 0;

  async function job(name: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
      runs.inc({ job: name, outcome: "ok" });
    } catch (err) {
      runs.inc({ job: name, outcome: "error" });
      log.warn(
        { job: name, err: String(err) },
        `maintenance job ${name} failed; it runs again at the next tick`,
      );
    }
  }

  async function tryLead(): Promise<boolean> {
    if (conn) {
      // still ours? a lost connection loses the lock with it
      const ok = await conn`select 1`.then(
        () => true,
        () => false,
      );
      if (ok) return true;
      conn.release();
      conn = null;
      leaderGauge.set(0);
      log.warn("maintenance lock lost with its connection; trying to take it again");
    }
    const c = await ctx.sql.reserve();
    const [row] = await c<
      { ok: boolean }[]
    >`select pg_try_advisory_lock(${MAINTENANCE_LOCK_KEY}::bigint) as ok`.catch(() => [{ ok: false }]);
    if (row?.ok) {
      conn = c;
      leaderGauge.set(1);
      log.info("this instance now runs telemetry maintenance (partitions, retention, rollups)");
      return true;
    }
    c.release();
    return false;
  }

  async function tick(): Promise<void> {
    let leader = false;
    try {
      leader = await tryLead();
    } catch (err) {
      log.warn({ err: String(err) }, "cannot reach PostgreSQL for the maintenance lock; retrying");
    }
    if (leader && !stopped) {
      const t = now();
      if (t - lastHousekeeping >= timings.housekeepingEveryMs) {
        await job("partitions", async () => {
          await ensurePartitions(ctx.sql, t);
        });
        await job("retention", async () => {
          const res = await applyRetention(ctx.sql, settings, t);
          dropped.inc(res.dropped.length);
          if (res.dropped.length > 0)
            log.info({ dropped: res.dropped }, "dropped telemetry partitions past retention");
        });
        lastHousekeeping = t;
      }
      await job("rollups", async () => {
        await refreshRollups(ctx.sql, settings, t);
      });
    }
    if (!stopped) timer = setTimeout(schedule, leader ? timings.rollupEveryMs : timings.leaderRetryMs);
  }

  function schedule(): void {
    timer = null;
    running = tick().finally(() => {
      running = null;
    });
  }

  return {
    name: "maintenance",
    isLeader: () => conn !== null,
    async start() {
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await running;
      if (conn) {
        await conn`select pg_advisory_unlock(${MAINTENANCE_LOCK_KEY}::bigint)`.catch(() => {});
        conn.release();
        conn = null;
        leaderGauge.set(0);
      }
    },
  };
}
