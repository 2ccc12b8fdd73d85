/**
 * The alerter service: a leader-elected evaluation loop and delivery workers.
 *
 * Each cycle (leader only): load enabled rules, the instance cache (first cycle after taking the lead),
 * acknowledgements and active silences; evaluate every rule at `now` through the query port; advance the
 * state machines and decide notifications (engine/cycle.ts); write instances, history and outbox rows in ONE
 * transaction on the leader's connection (fenced by the lock); then publish the state changes on NATS and
 * wake the delivery workers. A failed cycle drops the cache, so the next one starts from what is committed.
 */

import { randomUUID } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Sql } from "postgres";
import { parseDuration } from "../config/schema.ts";
import type { Service } from "../lib/lifecycle.ts";
import type { Logger } from "../observability/logger.ts";
import type { Registry } from "../observability/metrics.ts";
import type { Keyring } from "../security/keyring.ts";
import { withAdmin } from "../storage/db.ts";
import { type CycleOutput, runCycle } from "./engine/cycle.ts";
import { evaluateRules } from "./engine/evaluate.ts";
import type { QueryPort } from "./engine/query.ts";
import type { Instance } from "./engine/state.ts";
import { publishEvents } from "./events.ts";
import { alerterLeadership } from "./leader.ts";
import type { ChannelType } from "./notify/channels.ts";
import type { AlerterConfig, Integration } from "./notify/types.ts";
import { createDelivery, type Delivery } from "./notify/worker.ts";
import { PgQueryPort } from "./store/pg-query.ts";
import { loadInstances, loadRules, loadSilences, mergeAcknowledgements, persistCycle } from "./store/repo.ts";

export interface AlerterOptions {
  sql: Sql;
  log: Logger;
  metrics?: Registry;
  nats: NatsConnection | null;
  keyring: Keyring;
  config: AlerterConfig;
  /** Unix ms; defaults to Date.now. Tests move it. */
  clock?: () => number;
  query?: QueryPort;
  integrations?: Partial<Record<ChannelType, Integration>>;
  /** Run the evaluation loop (default true); tests drive evaluateOnce() themselves. */
  evaluationLoop?: boolean;
  /** Run delivery workers (default true). */
  deliveryLoop?: boolean;
  workerId?: string;
}

export interface CycleReport {
  at: number;
  rules: number;
  series: number;
  upserts: number;
  notifications: number;
  evalMs: number;
  totalMs: number;
}

export interface Alerter extends Service {
  /** One cycle if this instance is (or becomes) the leader; null otherwise. */
  evaluateOnce(): Promise<CycleReport | null>;
  readonly delivery: Delivery;
  isLeader(): boolean;
}

export function createAlerter(o: AlerterOptions): Alerter {
  const log = o.log;
  const clock = o.clock ?? Date.now;
  const intervalMs = parseDuration(o.config.evaluation_interval);
  const cooldownMs = parseDuration(o.config.notification_cooldown);
  const port = o.query ?? new PgQueryPort(o.sql);
  const leadership = alerterLeadership(o.sql, log);
  const workerId = o.workerId ?? `${process.pid}-${randomUUID().slice(0, 8)}`;
  const delivery = createDelivery({
    sql: o.sql,
    keyring: o.keyring,
    log: log.child({ component: "delivery" }),
    config: o.config,
    workerId,
    ...(o.metrics ? { metrics: o.metrics } : {}),
    ...(o.integrations ? { integrations: o.integrations } : {}),
  });
  const m = o.metrics;
  const leaderGauge = m?.gauge({
    name: "secumon_alerter_leader",
    help: "1 while this alerter instance evaluates the rules.",
  });
  const cycleSeconds = m?.histogram({
    name: "secumon_alerter_cycle_seconds",
    help: "Wall time of one evaluation cycle (query, evaluate, write).",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const cycleFailures = m?.counter({
    name: "secumon_alerter_cycle_failures_total",
    help: "Evaluation cycles that failed.",
  });
  const rulesGauge = m?.gauge({
    name: "secumon_alerter_rules",
    help: "Enabled rules evaluated, and invalid ones skipped.",
    labelNames: ["status"],
  });
  const instancesGauge = m?.gauge({
    name: "secumon_alerter_instances",
    help: "Alert instances by state.",
    labelNames: ["state"],
  });

  let cache: Map<string, Map<string, Instance>> | null = null;
  let running = false;
  let loop: Promise<void> | null = null;
  let sleeper: { timer: ReturnType<typeof setTimeout>; resolve: () => void } | null = null;
  let lastError: string | null = null;

  async function cycle(): Promise<CycleReport> {
    if (!leadership.held) throw new Error("not the leader");
    const t0 = performance.now();
    const now = clock();
    const { rules, invalid } = await withAdmin(o.sql, (tx) => loadRules(tx, log));
    const [silences] = await Promise.all([
      withAdmin(o.sql, (tx) => loadSilences(tx, now, log)),
      (async () => {
        if (!cache) cache = await withAdmin(o.sql, (tx) => loadInstances(tx));
        else await withAdmin(o.sql, (tx) => mergeAcknowledgements(tx, cache!));
      })(),
    ]);
    const instances = cache!;
    const t1 = performance.now();
    const evaluation = await evaluateRules(rules, now, port);
    for (const [id, why] of evaluation.failed)
      log.warn({ rule_id: id, err: why }, "alert rule could not be evaluated this cycle");
    const evalMs = performance.now() - t1;
    let out: CycleOutput;
    let inserted = 0;
    try {
      out = runCycle({ now, rules, evaluation, instances, silences, cooldownMs, newId: randomUUID });
      inserted = await leadership.transaction((tx) => persistCycle(tx, out));
    } catch (e) {
      cache = null; // state in memory may be ahead of the database: reload next cycle
      throw e;
    }
    publishEvents(o.nats, out.events, log);
    if (inserted > 0) delivery.wake();
    const series = [...evaluation.active.values()].reduce((n, x) => n + x.size, 0);
    const totalMs = performance.now() - t0;
    cycleSeconds?.observe(totalMs / 1000);
    rulesGauge?.set({ status: "evaluated" }, rules.length);
    rulesGauge?.set({ status: "invalid" }, invalid);
    if (instancesGauge) {
      const counts = { pending: 0, firing: 0, resolved: 0 };
      for (const byFp of instances.values()) for (const i of byFp.values()) counts[i.state]++;
      for (const [s, n] of Object.entries(counts)) instancesGauge.set({ state: s }, n);
    }
    if (out.events.length > 0 || inserted > 0)
      log.info(
        { transitions: out.events.length, notifications: inserted, ms: Math.round(totalMs) },
        "alert cycle",
      );
    return {
      at: now,
      rules: rules.length,
      series,
      upserts: out.upserts.length,
      notifications: inserted,
      evalMs,
      totalMs,
    };
  }

  async function evaluateOnce(): Promise<CycleReport | null> {
    const wasLeader = leadership.held;
    if (!(await leadership.ensure())) {
      leaderGauge?.set(0);
      return null;
    }
    if (!wasLeader) cache = null;
    leaderGauge?.set(1);
    try {
      const r = await cycle();
      lastError = null;
      return r;
    } catch (e) {
      cycleFailures?.inc();
      lastError = (e as Error).message;
      log.error({ err: lastError }, "alert evaluation cycle failed; retrying next interval");
      // a broken leader connection: let another instance (or this one, reconnected) take over
      if (!(await leadership.ensure())) leaderGauge?.set(0);
      return null;
    }
  }

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      sleeper = { timer: setTimeout(resolve, ms), resolve };
    }).finally(() => {
      sleeper = null;
    });

  async function run() {
    const followerPollMs = Math.max(100, Math.min(1000, intervalMs / 2));
    let next = Date.now();
    while (running) {
      const report = await evaluateOnce().catch(() => null);
      if (!running) break;
      if (leadership.held) {
        next += intervalMs;
        const now = Date.now();
        if (next < now) next = now; // a cycle longer than the interval: start the next at once, don't pile up
        await sleep(next - now);
      } else {
        void report;
        await sleep(followerPollMs);
        next = Date.now();
      }
    }
  }

  return {
    name: "alerter",
    async start() {
      if (running) return;
      running = true;
      if (o.deliveryLoop !== false) await delivery.start();
      if (o.evaluationLoop !== false) loop = run();
    },
    async stop() {
      running = false;
      if (sleeper) {
        clearTimeout(sleeper.timer);
        sleeper.resolve();
      }
      await loop;
      loop = null;
      await delivery.stop();
      await leadership.close();
      leaderGauge?.set(0);
    },
    readiness: () => (lastError && leadership.held ? `alert evaluation failing: ${lastError}` : null),
    evaluateOnce,
    delivery,
    isLeader: () => leadership.held,
  };
}
