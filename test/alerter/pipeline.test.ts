/**
 * The alerter against a real PostgreSQL and nats-server: rule → instance → history → outbox → webhook, with
 * retries, grouping, silences, acknowledgement and escalation, driven by a fake clock.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { connect as natsConnect } from "@nats-io/transport-node";
import { createAlerter } from "../../src/alerter/service.ts";
import { createLogger, silentLogger } from "../../src/observability/logger.ts";

const debugLog = process.env.ALERTER_TEST_LOG ? createLogger({ level: "debug" }) : silentLogger();

import { withTenant } from "../../src/storage/db.ts";
import { testNats } from "../support/nats.ts";
import {
  addAgent,
  addChannel,
  addRule,
  alertDb,
  alerterConfig,
  cpu,
  cpuRule,
  fakeClock,
  outbox,
  webhookReceiver,
} from "./support.ts";

const receivers: { stop(): void }[] = [];
afterAll(() => {
  for (const r of receivers) r.stop();
});

async function setup(opts: { failFirst?: number; status?: number } = {}) {
  const db = await alertDb();
  const hook = webhookReceiver({ secret: "0123456789abcdef-secret", ...opts });
  receivers.push(hook);
  const channel = await addChannel(db, "webhook", { url: hook.url, secret: "0123456789abcdef-secret" });
  const clock = fakeClock();
  const alerter = createAlerter({
    sql: db.sql,
    log: debugLog,
    nats: null,
    keyring: db.keyring,
    config: alerterConfig(),
    clock: clock.now,
    evaluationLoop: false,
    deliveryLoop: false,
  });
  return { db, hook, channel, clock, alerter };
}

const MIN = 60_000;

describe("alerter pipeline (PostgreSQL)", () => {
  test("threshold fires once, is delivered signed with its idempotency key, and resolves", async () => {
    const { db, hook, channel, clock, alerter } = await setup();
    const nc = await natsConnect({ servers: await testNats() });
    const events: { state: string; rule_id: string }[] = [];
    const sub = nc.subscribe(`secumon.events.alert.${db.tenant}.>`, {
      callback: (_e, m) => {
        events.push(m.json());
      },
    });
    const a1 = await addAgent(db, "web-1", ["web"]);
    const a2 = await addAgent(db, "db-1");
    const rule = await addRule(db, cpuRule(90), [channel]);
    const withNats = createAlerter({
      sql: db.sql,
      log: debugLog,
      nats: nc,
      keyring: db.keyring,
      config: alerterConfig(),
      clock: clock.now,
      evaluationLoop: false,
      deliveryLoop: false,
    });

    await cpu(db, a1, clock.now() - 10_000, 97.5);
    await cpu(db, a2, clock.now() - 10_000, 20);
    const r1 = await withNats.evaluateOnce();
    expect(r1?.rules).toBe(1);
    expect(r1?.notifications).toBe(1);
    // a second cycle with the same data changes nothing and queues nothing
    clock.advance(1000);
    expect((await withNats.evaluateOnce())?.notifications).toBe(0);

    const [inst] =
      await db.sql`SELECT state, labels, value, threshold, history_id::text FROM alert_instances`;
    expect(inst?.state).toBe("firing");
    expect(inst?.labels).toMatchObject({
      agent_id: a1,
      agent: "web-1",
      alertname: expect.stringMatching(/^cpu-/),
      severity: "critical",
    });
    const [hist] =
      await db.sql`SELECT id::text, status, agent_id::text, value, threshold, message FROM alert_history`;
    expect(hist).toMatchObject({
      id: inst?.history_id,
      status: "firing",
      agent_id: a1,
      value: 97.5,
      threshold: 90,
    });
    expect(hist?.message).toContain("web-1");

    expect(await alerter.delivery.deliverDue()).toBe(1);
    expect(hook.received).toHaveLength(1);
    const got = hook.received[0]!;
    expect(got.signatureOk).toBe(true);
    const [row] = await outbox(db);
    expect(row).toMatchObject({ kind: "firing", status: "delivered", attempts: 1 });
    expect(got.headers["idempotency-key"]).toBe(row!.idempotency_key);
    expect(got.body).toMatchObject({
      kind: "firing",
      status: "firing",
      rule: { id: rule, severity: "critical" },
    });
    expect((got.body.alerts as { labels: Record<string, string> }[])[0]?.labels.agent_id).toBe(a1);
    expect(String(got.body.message)).toContain("CPU at 97.5% on web-1");
    const [att] = await db.sql`SELECT ok, status_code, attempt FROM notification_attempts`;
    expect(att).toMatchObject({ ok: true, status_code: 200, attempt: 1 });

    // the value drops: resolved, in the history and as a notification
    await cpu(db, a1, clock.advance(MIN) - 1000, 10);
    expect((await withNats.evaluateOnce())?.notifications).toBe(1);
    await alerter.delivery.deliverDue();
    expect(hook.received.map((r) => r.body.status)).toEqual(["firing", "resolved"]);
    const [h2] = await db.sql`SELECT status, resolved_at FROM alert_history`;
    expect(h2?.status).toBe("resolved");
    expect((await db.sql`SELECT state FROM alert_instances`)[0]?.state).toBe("resolved");
    await nc.flush();
    await Bun.sleep(50);
    expect(events.map((e) => e.state)).toEqual(["firing", "resolved"]);
    expect(events[0]?.rule_id).toBe(rule);
    sub.unsubscribe();
    await withNats.stop();
    await alerter.stop();
    await nc.close();
  });

  test("a receiver failing twice gets the same idempotency key three times; every attempt is recorded", async () => {
    const { db, hook, channel, clock, alerter } = await setup({ failFirst: 2 });
    const a1 = await addAgent(db, "web-1");
    await addRule(db, cpuRule(90), [channel]);
    await cpu(db, a1, clock.now() - 1000, 99);
    await alerter.evaluateOnce();
    for (let i = 0; i < 50 && hook.effective.size === 0; i++) {
      await alerter.delivery.deliverDue();
      await Bun.sleep(60);
    }
    expect(hook.received).toHaveLength(3);
    expect(new Set(hook.received.map((r) => r.headers["idempotency-key"])).size).toBe(1);
    expect([...hook.effective.values()]).toEqual([1]);
    const [row] = await outbox(db);
    expect(row).toMatchObject({ status: "delivered", attempts: 3, last_error: null });
    const attempts = await db.sql`SELECT ok, status_code, error FROM notification_attempts ORDER BY attempt`;
    expect(attempts.map((a) => [a.ok, a.status_code])).toEqual([
      [false, 503],
      [false, 503],
      [true, 200],
    ]);
    expect(attempts[0]?.error).toContain("answered 503");
    await alerter.stop();
  });

  test("a receiver rejecting the request (400) is not retried: failed, with the reason", async () => {
    const { db, channel, clock, alerter } = await setup({ status: 400 });
    const a1 = await addAgent(db, "web-1");
    await addRule(db, cpuRule(90), [channel]);
    await cpu(db, a1, clock.now() - 1000, 99);
    await alerter.evaluateOnce();
    await alerter.delivery.deliverDue();
    const [row] = await outbox(db);
    expect(row?.status).toBe("failed");
    expect(row?.last_error).toContain("answered 400");
    expect(row?.last_error).toContain("check the channel's configuration");
    await alerter.stop();
  });

  test("the retry budget runs out: failed after max_attempts, saying so", async () => {
    const { db, channel, clock } = await setup({ failFirst: 100 });
    const alerter = createAlerter({
      sql: db.sql,
      log: debugLog,
      nats: null,
      keyring: db.keyring,
      config: alerterConfig({ delivery: { max_attempts: 2 } }),
      clock: clock.now,
      evaluationLoop: false,
      deliveryLoop: false,
    });
    const a1 = await addAgent(db, "web-1");
    await addRule(db, cpuRule(90), [channel]);
    await cpu(db, a1, clock.now() - 1000, 99);
    await alerter.evaluateOnce();
    for (let i = 0; i < 20 && (await outbox(db))[0]?.status !== "failed"; i++) {
      await alerter.delivery.deliverDue();
      await Bun.sleep(60);
    }
    const [row] = await outbox(db);
    expect(row).toMatchObject({ status: "failed", attempts: 2 });
    expect(row?.last_error).toContain("gave up after 2 attempts");
    await alerter.stop();
  });

  test("simultaneous instances of one rule are grouped into one notification", async () => {
    const { db, hook, channel, clock, alerter } = await setup();
    const agents = await Promise.all(["a", "b", "c"].map((n) => addAgent(db, n)));
    await addRule(db, cpuRule(90), [channel]);
    for (const a of agents) await cpu(db, a, clock.now() - 1000, 95);
    expect((await alerter.evaluateOnce())?.notifications).toBe(1);
    await alerter.delivery.deliverDue();
    expect(hook.received).toHaveLength(1);
    expect((hook.received[0]!.body.alerts as unknown[]).length).toBe(3);
    expect(String(hook.received[0]?.body.title)).toStartWith("[FIRING:3]");
    await alerter.stop();
  });

  test("silence during a firing alert: no repeats while active; the repeat resumes once it ends", async () => {
    const { db, channel, clock, alerter } = await setup();
    const a1 = await addAgent(db, "web-1");
    const rule = await addRule(
      db,
      cpuRule(90, {
        repeat_interval: "10m",
        conditions: {
          conditions: [{ metric: "system.cpu_usage", aggregation: "max", window: "1h", threshold: 90 }],
        },
      }),
      [channel],
    );
    await cpu(db, a1, clock.now() - 1000, 99);
    await alerter.evaluateOnce();
    expect((await outbox(db)).map((o) => o.kind)).toEqual(["firing"]);
    // a maintenance window on this agent, written as the API would
    await withTenant(
      db.sql,
      db.tenant,
      (tx) => tx`
      INSERT INTO alert_silences (tenant_id, kind, matchers, starts_at, ends_at, author, comment)
      VALUES (${db.tenant}, 'maintenance', ${tx.json([{ name: "agent_id", op: "=", value: a1 }])}, ${new Date(clock.now())},
              ${new Date(clock.now() + 25 * MIN)}, 'ops@example.com', 'kernel upgrade')`,
    );
    for (let t = 1; t <= 24; t++) {
      clock.advance(MIN);
      await alerter.evaluateOnce();
    }
    expect((await outbox(db)).map((o) => o.kind)).toEqual(["firing"]);
    expect((await db.sql`SELECT state FROM alert_instances WHERE rule_id = ${rule}`)[0]?.state).toBe(
      "firing",
    );
    clock.advance(2 * MIN); // the window is over
    await alerter.evaluateOnce();
    expect((await outbox(db)).map((o) => o.kind)).toEqual(["firing", "repeat"]);
    await alerter.stop();
  });

  test("a silence matching nothing else does not hide other alerts; one created before firing delays the page", async () => {
    const { db, channel, clock, alerter } = await setup();
    const a1 = await addAgent(db, "web-1");
    const a2 = await addAgent(db, "web-2");
    await addRule(
      db,
      cpuRule(90, {
        conditions: {
          conditions: [{ metric: "system.cpu_usage", aggregation: "max", window: "1h", threshold: 90 }],
        },
      }),
      [channel],
    );
    await withTenant(
      db.sql,
      db.tenant,
      (tx) => tx`
      INSERT INTO alert_silences (tenant_id, matchers, starts_at, ends_at, author)
      VALUES (${db.tenant}, ${tx.json([{ name: "agent", op: "=~", value: "web-1|other" }])}, ${new Date(clock.now() - MIN)},
              ${new Date(clock.now() + 3 * MIN)}, 'ops@example.com')`,
    );
    await cpu(db, a1, clock.now() - 1000, 99);
    await cpu(db, a2, clock.now() - 1000, 99);
    await alerter.evaluateOnce();
    let rows = await outbox(db);
    expect(rows).toHaveLength(1);
    expect((rows[0]!.payload.alerts as { labels: { agent: string } }[]).map((a) => a.labels.agent)).toEqual([
      "web-2",
    ]);
    clock.advance(4 * MIN);
    await alerter.evaluateOnce();
    rows = await outbox(db);
    expect(rows.map((r) => r.kind)).toEqual(["firing", "firing"]);
    expect((rows[1]!.payload.alerts as { labels: { agent: string } }[]).map((a) => a.labels.agent)).toEqual([
      "web-1",
    ]);
    await alerter.stop();
  });

  test("acknowledgement stops repeats and escalation; a new episode pages again", async () => {
    const { db, channel, clock, alerter } = await setup();
    const oncall = await addChannel(db, "webhook", { url: "http://127.0.0.1:9/none" });
    const a1 = await addAgent(db, "web-1");
    const [user] =
      await db.sql`INSERT INTO users (tenant_id, email, role) VALUES (${db.tenant}, 'op@example.com', 'operator') RETURNING id::text`;
    await addRule(
      db,
      cpuRule(90, {
        repeat_interval: "5m",
        conditions: {
          conditions: [{ metric: "system.cpu_usage", aggregation: "last", window: "1h", threshold: 90 }],
        },
      }),
      [channel],
      [{ level: 1, after: "15m", channel: oncall }],
    );
    await cpu(db, a1, clock.now() - 1000, 99);
    await alerter.evaluateOnce();
    clock.advance(5 * MIN);
    await alerter.evaluateOnce();
    expect((await outbox(db)).map((o) => o.kind)).toEqual(["firing", "repeat"]);
    const [inst] = await db.sql`SELECT id::text FROM alert_instances`;
    // acknowledged through the API's path: an INSERT as secumon_app, the trigger does the rest
    await withTenant(
      db.sql,
      db.tenant,
      (tx) => tx`
      INSERT INTO alert_acknowledgements (tenant_id, instance_id, user_id, author, comment)
      VALUES (${db.tenant}, ${inst!.id}, ${user!.id}, 'op@example.com', 'looking into it')`,
    );
    for (let i = 0; i < 6; i++) {
      clock.advance(5 * MIN);
      await alerter.evaluateOnce();
    }
    expect((await outbox(db)).map((o) => o.kind)).toEqual(["firing", "repeat"]);
    const [h] = await db.sql`SELECT acknowledged_at, acknowledged_by::text FROM alert_history`;
    expect(h?.acknowledged_by).toBe(user!.id);
    expect((await db.sql`SELECT history_id FROM alert_acknowledgements`)[0]?.history_id).not.toBeNull();
    // resolves, then fires again: a new episode, not acknowledged
    await cpu(db, a1, clock.advance(MIN) - 500, 10);
    await alerter.evaluateOnce();
    await cpu(db, a1, clock.advance(MIN) - 500, 99);
    await alerter.evaluateOnce();
    expect((await outbox(db)).map((o) => o.kind)).toEqual(["firing", "repeat", "resolved", "firing"]);
    expect((await db.sql`SELECT acknowledged_at FROM alert_instances`)[0]?.acknowledged_at).toBeNull();
    await alerter.stop();
  });

  test("acknowledging an alert that is not firing is refused with a clear message", async () => {
    const { db, clock, alerter } = await setup();
    const a1 = await addAgent(db, "web-1");
    await addRule(db, cpuRule(90, { for_duration: "10m" }));
    await cpu(db, a1, clock.now() - 1000, 99);
    await alerter.evaluateOnce();
    const [inst] = await db.sql`SELECT id::text, state FROM alert_instances`;
    expect(inst?.state).toBe("pending");
    const ack = withTenant(
      db.sql,
      db.tenant,
      (tx) => tx`
      INSERT INTO alert_acknowledgements (tenant_id, instance_id, author) VALUES (${db.tenant}, ${inst!.id}, 'op')`,
    );
    expect(ack).rejects.toThrow(/is not firing, so there is nothing to acknowledge/);
    await alerter.stop();
  });

  test("escalation: unacknowledged after 10 minutes, the next channel set is paged once, then repeats go to both", async () => {
    const { db, hook, channel, clock, alerter } = await setup();
    const hook2 = webhookReceiver();
    receivers.push(hook2);
    const oncall = await addChannel(db, "webhook", { url: hook2.url });
    const a1 = await addAgent(db, "web-1");
    await addRule(
      db,
      cpuRule(90, {
        repeat_interval: "30m",
        conditions: {
          conditions: [{ metric: "system.cpu_usage", aggregation: "last", window: "2h", threshold: 90 }],
        },
      }),
      [channel],
      [{ level: 1, after: "10m", channel: oncall }],
    );
    await cpu(db, a1, clock.now() - 1000, 99);
    await alerter.evaluateOnce();
    for (let m = 1; m <= 9; m++) {
      clock.advance(MIN);
      await alerter.evaluateOnce();
    }
    expect((await outbox(db)).map((o) => o.kind)).toEqual(["firing"]);
    clock.advance(MIN); // 10 minutes after firing
    await alerter.evaluateOnce();
    clock.advance(MIN);
    await alerter.evaluateOnce();
    let rows = await outbox(db);
    expect(rows.map((o) => [o.kind, o.channel_id])).toEqual([
      ["firing", channel],
      ["escalation", oncall],
    ]);
    expect((await db.sql`SELECT escalation_level FROM alert_instances`)[0]?.escalation_level).toBe(1);
    clock.advance(30 * MIN); // repeat interval after the escalation
    await alerter.evaluateOnce();
    rows = await outbox(db);
    expect(
      rows
        .slice(2)
        .map((o) => [o.kind, o.channel_id])
        .sort(),
    ).toEqual(
      [
        ["repeat", channel],
        ["repeat", oncall],
      ].sort(),
    );
    while ((await alerter.delivery.deliverDue()) > 0);
    expect(hook.received.map((r) => r.body.kind)).toEqual(["firing", "repeat"]);
    expect(hook2.received.map((r) => r.body.kind)).toEqual(["escalation", "repeat"]);
    expect(String(hook2.received[0]?.body.title)).toStartWith("[ESCALATED]");
    await alerter.stop();
  });

  test("a test notification queued by the API (kind test, as secumon_app) is delivered", async () => {
    const { db, hook, channel, alerter } = await setup();
    const [row] = await withTenant(
      db.sql,
      db.tenant,
      (tx) => tx`
      INSERT INTO notification_outbox (tenant_id, channel_id, kind, idempotency_key, payload)
      VALUES (${db.tenant}, ${channel}, 'test', ${crypto.randomUUID()}, ${tx.json({ kind: "test", message: "hello from the API" })})
      RETURNING id::text`,
    );
    await alerter.delivery.deliverDue();
    const [s] = await withTenant(
      db.sql,
      db.tenant,
      (tx) => tx`SELECT status FROM notification_outbox WHERE id = ${row!.id}`,
    );
    expect(s?.status).toBe("delivered");
    expect(hook.received[0]?.body.message).toBe("hello from the API");
    await alerter.stop();
  });

  test("a rule stored with invalid conditions is skipped and the others still evaluate", async () => {
    const { db, clock, alerter } = await setup();
    const a1 = await addAgent(db, "web-1");
    await addRule(db, cpuRule(90));
    await db.sql`INSERT INTO alert_rules (tenant_id, name, severity, type, conditions)
                 VALUES (${db.tenant}, 'broken', 'warning', 'threshold', ${db.sql.json({ conditions: [{ metric: "nope.x" }] })})`;
    await cpu(db, a1, clock.now() - 1000, 99);
    const r = await alerter.evaluateOnce();
    expect(r?.rules).toBe(1);
    expect((await db.sql`SELECT state FROM alert_instances`).map((x) => x.state)).toEqual(["firing"]);
    await alerter.stop();
  });
});
