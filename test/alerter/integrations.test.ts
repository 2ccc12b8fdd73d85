/**
 * Each integration against a local stand-in: a real SMTP server (smtp-server) with STARTTLS and AUTH, and
 * HTTP servers checking the documented request shapes of Slack incoming webhooks and Twilio's Messages API.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SMTPServer } from "smtp-server";
import { emailIntegration } from "../../src/alerter/notify/email/index.ts";
import { render } from "../../src/alerter/notify/render.ts";
import { slackIntegration } from "../../src/alerter/notify/slack/index.ts";
import { smsIntegration } from "../../src/alerter/notify/sms/index.ts";
import { DeliveryError, type SendContext } from "../../src/alerter/notify/types.ts";
import { createAlerter } from "../../src/alerter/service.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { tempDir } from "../support/tmp.ts";
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
} from "./support.ts";

const payload = {
  kind: "firing",
  status: "firing",
  rule: { id: "r1", name: "High CPU", severity: "critical", type: "threshold" },
  annotations: { summary: "CPU at {{value}}% on {{labels.agent}}" },
  alerts: [
    {
      instance_id: "i1",
      labels: { agent: "web-1", agent_id: "a1" },
      value: 97.5,
      threshold: 90,
      fired_at: "2025-01-01T00:00:00.000Z",
    },
  ],
};
const ctx = (over: Partial<SendContext> = {}): SendContext => ({
  idempotencyKey: "firing:r1:c1:abc",
  kind: "firing",
  payload,
  deliveredTo: [],
  markDelivered: async () => {},
  signal: new AbortController().signal,
  ...over,
});
const base = alerterConfig().notifications;

describe("email over SMTP with STARTTLS and AUTH", () => {
  const dir = tempDir("secumon-smtp-");
  const mails: { from: string; to: string[]; data: string; secure: boolean; user: string | undefined }[] = [];
  let server: SMTPServer;
  let port = 0;
  beforeAll(async () => {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    server = new SMTPServer({
      secure: false,
      key: readFileSync(join(dir, "key.pem")),
      cert: readFileSync(join(dir, "cert.pem")),
      authMethods: ["PLAIN", "LOGIN"],
      onAuth(auth, _session, cb) {
        if (auth.username === "alerts" && auth.password === "s3cret-pass") cb(null, { user: "alerts" });
        else cb(new Error("Invalid username or password"));
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          mails.push({
            from: String(session.envelope.mailFrom ? session.envelope.mailFrom.address : ""),
            to: session.envelope.rcptTo.map((r) => r.address),
            data: Buffer.concat(chunks).toString("utf8"),
            secure: session.secure,
            user: session.user as string | undefined,
          });
          cb();
        });
      },
      logger: false,
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const cfg = (over: Record<string, unknown> = {}) => ({
    ...base.email,
    enabled: true,
    smtp_host: "127.0.0.1",
    smtp_port: port,
    from: "secumon@example.com",
    username: "alerts",
    password: "s3cret-pass",
    ca_file: join(dir, "cert.pem"),
    ...over,
  });

  test("the mail arrives over TLS, authenticated, with the rendered alert and the idempotency key as Message-ID", async () => {
    const r = await emailIntegration(cfg()).send(
      render(payload, "https://secumon.example.com"),
      { to: ["ops@example.com", "dba@example.com"] },
      ctx(),
    );
    expect(r.statusCode).toBe(250);
    const m = mails.at(-1)!;
    expect(m.secure).toBe(true);
    expect(m.user).toBe("alerts");
    expect(m.to).toEqual(["ops@example.com", "dba@example.com"]);
    expect(m.from).toBe("secumon@example.com");
    expect(m.data).toContain("Subject: [FIRING] High CPU (critical)");
    expect(m.data).toContain("CPU at 97.5% on web-1");
    expect(m.data).toContain("https://secumon.example.com/alerts/i1");
    expect(m.data).toContain("Message-ID: <firing.r1.c1.abc@secumon>");
  });

  test("a wrong password is a permanent error naming the settings to check", async () => {
    const e = await emailIntegration(cfg({ password: "wrong" }))
      .send(render(payload, ""), { to: ["ops@example.com"] }, ctx())
      .catch((x) => x);
    expect(e).toBeInstanceOf(DeliveryError);
    expect(e.opts.permanent).toBe(true);
    expect(e.message).toContain("refused the login");
    expect(e.message).not.toContain("wrong");
  });

  test("an untrusted certificate fails (no silent downgrade) and is retried", async () => {
    const e = await emailIntegration(cfg({ ca_file: "" }))
      .send(render(payload, ""), { to: ["ops@example.com"] }, ctx())
      .catch((x) => x);
    expect(e).toBeInstanceOf(DeliveryError);
    expect(e.opts.permanent).toBe(false);
    expect(e.message).toContain("will retry");
  });

  test("email switched off in the config: permanent error saying which setting", async () => {
    const e = await emailIntegration(cfg({ enabled: false }))
      .send(render(payload, ""), { to: ["a@b.c"] }, ctx())
      .catch((x) => x);
    expect(e.message).toContain("alerter.notifications.email.enabled");
    expect(e.opts.permanent).toBe(true);
  });

  test("end to end: a firing rule pages an email channel through the outbox", async () => {
    const db = await alertDb();
    const clock = fakeClock();
    const channel = await addChannel(db, "email", { to: ["oncall@example.com"] });
    const a1 = await addAgent(db, "web-1");
    await addRule(db, cpuRule(90), [channel]);
    await cpu(db, a1, clock.now() - 1000, 99);
    const config = alerterConfig();
    config.notifications.email = cfg();
    const alerter = createAlerter({
      sql: db.sql,
      log: silentLogger(),
      nats: null,
      keyring: db.keyring,
      config,
      clock: clock.now,
      evaluationLoop: false,
      deliveryLoop: false,
    });
    const before = mails.length;
    await alerter.evaluateOnce();
    await alerter.delivery.deliverDue();
    expect((await outbox(db))[0]?.status).toBe("delivered");
    expect(mails.length).toBe(before + 1);
    expect(mails.at(-1)?.to).toEqual(["oncall@example.com"]);
    await alerter.stop();
  });
});

describe("Slack incoming webhook", () => {
  const seen: { contentType: string | null; body: { text?: string; blocks?: unknown[] } }[] = [];
  let status = 200;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (req.method !== "POST" || !url.pathname.startsWith("/services/"))
        return new Response("no_service", { status: 404 });
      const body = (await req.json().catch(() => null)) as { text?: string; blocks?: unknown[] } | null;
      if (!body || typeof body.text !== "string") return new Response("invalid_payload", { status: 400 });
      seen.push({ contentType: req.headers.get("content-type"), body });
      return new Response(status === 200 ? "ok" : "rate_limited", { status });
    },
  });
  afterAll(() => server.stop(true));
  const hook = `http://127.0.0.1:${server.port}/services/T000/B000/XXXX`;

  test("posts JSON with text and blocks; Slack's 'ok' is success", async () => {
    const r = await slackIntegration(base.slack, 5000).send(
      render(payload, ""),
      { webhook_url: hook },
      ctx(),
    );
    expect(r.statusCode).toBe(200);
    expect(seen.at(-1)?.contentType).toBe("application/json");
    expect(seen.at(-1)?.body.text).toContain("[FIRING] High CPU (critical) on web-1");
    expect(seen.at(-1)?.body.blocks).toHaveLength(2);
  });

  test("404 no_service is permanent; 429 is retried", async () => {
    const e1 = await slackIntegration(base.slack, 5000)
      .send(render(payload, ""), { webhook_url: `http://127.0.0.1:${server.port}/wrong` }, ctx())
      .catch((x) => x);
    expect(e1.opts).toMatchObject({ permanent: true, statusCode: 404 });
    status = 429;
    const e2 = await slackIntegration(base.slack, 5000)
      .send(render(payload, ""), { webhook_url: hook }, ctx())
      .catch((x) => x);
    status = 200;
    expect(e2.opts).toMatchObject({ permanent: false, statusCode: 429 });
    expect(e2.message).not.toContain("XXXX"); // the webhook path is a secret
  });

  test("no URL on the channel nor in the config: permanent, says where to set one", async () => {
    const e = await slackIntegration(base.slack, 5000)
      .send(render(payload, ""), {}, ctx())
      .catch((x) => x);
    expect(e.message).toContain("alerter.notifications.slack");
  });
});

describe("SMS through Twilio's Messages API", () => {
  const sid = "AC0123456789abcdef0123456789abcdef";
  const token = "twilio-auth-token";
  const sent: { to: string; from: string; body: string }[] = [];
  let failFor = "";
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (req.method !== "POST" || url.pathname !== `/2010-04-01/Accounts/${sid}/Messages.json`)
        return Response.json({ code: 20404, message: "not found" }, { status: 404 });
      if (req.headers.get("authorization") !== `Basic ${btoa(`${sid}:${token}`)}`)
        return Response.json({ code: 20003, message: "Authenticate" }, { status: 401 });
      if (req.headers.get("content-type") !== "application/x-www-form-urlencoded")
        return Response.json({ code: 21000, message: "bad content type" }, { status: 400 });
      const form = new URLSearchParams(await req.text());
      const to = form.get("To") ?? "";
      if (to === failFor) return Response.json({ code: 20500, message: "internal" }, { status: 500 });
      if (!to || !form.get("From") || !form.get("Body"))
        return Response.json({ code: 21604, message: "missing" }, { status: 400 });
      sent.push({ to, from: form.get("From")!, body: form.get("Body")! });
      return Response.json({ sid: `SM${sent.length}`, status: "queued" }, { status: 201 });
    },
  });
  afterAll(() => server.stop(true));
  const cfg = (over = {}) => ({
    ...base.sms,
    enabled: true,
    account_sid: sid,
    auth_token: token,
    from: "+15005550006",
    api_url: `http://127.0.0.1:${server.port}`,
    ...over,
  });

  test("one form-encoded POST per recipient with basic auth; 201 is success", async () => {
    const marked: string[] = [];
    const r = await smsIntegration(cfg(), 5000).send(
      render(payload, ""),
      { to: ["+33612345678", "+33698765432"] },
      ctx({ markDelivered: async (x) => void marked.push(x) }),
    );
    expect(r.statusCode).toBe(201);
    expect(sent.slice(-2).map((s) => s.to)).toEqual(["+33612345678", "+33698765432"]);
    expect(sent.at(-1)?.from).toBe("+15005550006");
    expect(sent.at(-1)?.body).toContain("High CPU");
    expect(marked).toEqual(["+33612345678", "+33698765432"]);
  });

  test("after a partial failure the retry skips recipients already reached", async () => {
    failFor = "+33698765432";
    const marked: string[] = [];
    const e = await smsIntegration(cfg(), 5000)
      .send(
        render(payload, ""),
        { to: ["+33611111111", "+33698765432"] },
        ctx({ markDelivered: async (x) => void marked.push(x) }),
      )
      .catch((x) => x);
    expect(e.opts).toMatchObject({ permanent: false, statusCode: 500 });
    expect(marked).toEqual(["+33611111111"]);
    failFor = "";
    const n = sent.length;
    await smsIntegration(cfg(), 5000).send(
      render(payload, ""),
      { to: ["+33611111111", "+33698765432"] },
      ctx({ deliveredTo: marked }),
    );
    expect(sent.slice(n).map((s) => s.to)).toEqual(["+33698765432"]);
  });

  test("a wrong auth token is permanent (401) and the token is not in the message", async () => {
    const e = await smsIntegration(cfg({ auth_token: "nope-token" }), 5000)
      .send(render(payload, ""), { to: ["+33612345678"] }, ctx())
      .catch((x) => x);
    expect(e.opts).toMatchObject({ permanent: true, statusCode: 401 });
    expect(e.message).not.toContain("nope-token");
  });
});
