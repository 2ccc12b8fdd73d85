/**
 * Real processes: kill -9 of an alerter between firing and delivery (nothing lost, nothing doubled — the
 * idempotency key proves it), and two alerters at once (exactly one evaluates; the other takes over when the
 * leader dies).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type Subprocess, spawn } from "bun";
import { waitFor } from "../support/collector.ts";
import {
  type AlertDb,
  addAgent,
  addChannel,
  addRule,
  alertDb,
  cpu,
  cpuRule,
  outbox,
  webhookReceiver,
} from "./support.ts";

interface Child {
  proc: Subprocess<"ignore", "pipe", "inherit">;
  lines: Record<string, unknown>[];
}
const children: Child[] = [];
const receivers: { stop(): void }[] = [];

function startChild(db: AlertDb, lease = "2s"): Child {
  const proc = spawn({
    cmd: [process.execPath, join(import.meta.dir, "child-alerter.ts")],
    env: {
      ...process.env,
      ALERTER_DB: db.url,
      ALERTER_KEY: db.keyB64,
      ALERTER_INTERVAL: "1s",
      ALERTER_LEASE: lease,
    },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
  });
  const child: Child = { proc, lines: [] };
  (async () => {
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += new TextDecoder().decode(chunk);
      let i = buf.indexOf("\n");
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          child.lines.push(JSON.parse(line));
        } catch {}
        i = buf.indexOf("\n");
      }
    }
  })();
  children.push(child);
  return child;
}
const said = (c: Child, msg: string) => c.lines.some((l) => String(l.msg).includes(msg));

afterEach(async () => {
  for (const c of children.splice(0)) {
    c.proc.kill("SIGKILL");
    await c.proc.exited;
  }
  for (const r of receivers.splice(0)) r.stop();
});

describe("alerter processes", () => {
  test("kill -9 between firing and delivery: the page arrives exactly once after another alerter takes over", async () => {
    const db = await alertDb();
    let first = true;
    const hook = webhookReceiver({
      secret: "0123456789abcdef-secret",
      hang: () => {
        const h = first;
        first = false;
        return h; // the first request never gets an answer: the alerter dies while waiting for it
      },
    });
    receivers.push(hook);
    const channel = await addChannel(db, "webhook", {
      url: hook.url,
      secret: "0123456789abcdef-secret",
      timeout: "30s",
    });
    const a1 = await addAgent(db, "web-1");
    await addRule(db, cpuRule(90), [channel]);
    await cpu(db, a1, Date.now() - 1000, 99);

    const a = startChild(db);
    await waitFor(async () => hook.received.length === 1, 30_000, "the first delivery attempt");
    a.proc.kill("SIGKILL");
    await a.proc.exited;
    // fired and sent, but the sender died before recording it
    expect((await outbox(db))[0]?.status).toBe("sending");

    const b = startChild(db);
    await waitFor(
      async () => (await outbox(db))[0]?.status === "delivered",
      30_000,
      "delivery by the second alerter",
    );
    expect(said(b, "now the leader")).toBe(true);
    const rows = await outbox(db);
    expect(rows).toHaveLength(1); // not queued twice
    expect(rows[0]?.attempts).toBe(2);
    expect(hook.received).toHaveLength(2);
    expect(hook.received.every((r) => r.signatureOk)).toBe(true);
    expect(new Set(hook.received.map((r) => r.headers["idempotency-key"]))).toEqual(
      new Set([rows[0]!.idempotency_key]),
    );
    expect([...hook.effective.values()]).toEqual([1]); // the receiver acted once
    expect(await db.sql`SELECT status FROM alert_history`).toHaveLength(1);
    expect((await db.sql`SELECT state FROM alert_instances`).map((r) => r.state)).toEqual(["firing"]);
  }, 90_000);

  test("two alerters: exactly one evaluates; when it is killed the other takes over and keeps alerting", async () => {
    const db = await alertDb();
    const hook = webhookReceiver();
    receivers.push(hook);
    const channel = await addChannel(db, "webhook", { url: hook.url });
    const a1 = await addAgent(db, "web-1");
    const a2 = await addAgent(db, "web-2");
    await addRule(
      db,
      cpuRule(90, {
        conditions: {
          conditions: [{ metric: "system.cpu_usage", aggregation: "last", window: "10s", threshold: 90 }],
        },
      }),
      [channel],
    );
    const x = startChild(db);
    const y = startChild(db);
    await waitFor(
      async () => said(x, "child alerter started") && said(y, "child alerter started"),
      30_000,
      "both alerters",
    );
    await waitFor(async () => said(x, "now the leader") || said(y, "now the leader"), 30_000, "a leader");
    await cpu(db, a1, Date.now(), 99);
    await waitFor(async () => hook.received.length === 1, 30_000, "the first page");
    const leaders = [x, y].filter((c) => said(c, "now the leader"));
    expect(leaders).toHaveLength(1);
    const [holders] =
      await db.sql`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND classid = ${0x5ec0} AND granted`;
    expect(holders?.n).toBe(1);
    const leader = leaders[0]!;
    const follower = leader === x ? y : x;

    leader.proc.kill("SIGKILL");
    await leader.proc.exited;
    await waitFor(async () => said(follower, "now the leader"), 30_000, "the follower to take over");
    await cpu(db, a2, Date.now(), 99);
    await waitFor(async () => hook.received.length === 2, 30_000, "a page from the new leader");
    expect(
      hook.received.map((r) => (r.body.alerts as { labels: { agent: string } }[])[0]?.labels.agent),
    ).toEqual(["web-1", "web-2"]);
    // the state the dead leader wrote was kept: web-1 was not paged again
    expect(await db.sql`SELECT 1 FROM alert_history`).toHaveLength(2);
  }, 90_000);
});
