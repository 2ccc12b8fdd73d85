/**
 * The maintenance role: one instance at a time does the work (a session-level PostgreSQL advisory lock held on
 * a dedicated session, src/storage/lock.ts; the others retry every 15 s and take over within that when the
 * holder stops or its session dies). The holder ensures partitions and applies retention every 10 minutes and refreshes the
 * rollups every minute (jobs.ts).
 */

import type { RoleContext } from "../app/role.ts";
import { parseDuration } from "../config/schema.ts";
import type { Service } from "../lib/lifecycle.ts";
import { SessionLock } from "../storage/lock.ts";
import { applyRetention, ensurePartitions, type RetentionSettings, refreshRollups } from "./jobs.ts";

/** Advisory lock key (two ints) of the maintenance leader; the alerter uses [0x5ec0, 0xa1e7]. */
export const MAINTENANCE_LOCK: readonly [number, number] = [0x5ec0, 0x3a17];

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

  const lock = new SessionLock(ctx.sql, MAINTENANCE_LOCK, log, "telemetry maintenance");
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
    const leader = await lock.ensure();
    leaderGauge.set(leader ? 1 : 0);
    return leader;
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
    isLeader: () => lock.held,
    async start() {
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await running;
      await lock.close();
      leaderGauge.set(0);
    },
  };
}
