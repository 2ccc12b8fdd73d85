/**
 * A gateway with an operator-supplied CA (gateway.tls.ca_file/ca_key_file) and tight limits: expired
 * certificates, per-agent rate limit, per-IP enrollment-failure throttling, and the simulator end to end.
 */
import "reflect-metadata"; // before @peculiar/x509
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Client, connectivityState, status } from "@grpc/grpc-js";
import * as x509 from "@peculiar/x509";
import { toPem } from "../../src/pki/ca.ts";
import { compress, decodePayload, decompressBounded, encodePayload } from "../../src/protocol/index.ts";
import { enroll, identityClient, makeClient, unaryCall } from "../../src/simulator/client.ts";
import { createSimulator } from "../../src/simulator/index.ts";
import { withAdmin } from "../../src/storage/db.ts";
import { waitFor } from "../support/collector.ts";
import { tempDir } from "../support/tmp.ts";
import {
  agentPresence,
  countMessages,
  createTenant,
  createToken,
  enrollAgent,
  type Harness,
  startGateway,
  telemetryMessages,
} from "./harness.ts";
import { expiredIdentity, generateKeyAndCsr, openStream, refusal, shortLivedIdentity } from "./helpers.ts";

x509.cryptoProvider.set(crypto);
const EC = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

let h: Harness;
let tenant: string;
let caCert: x509.X509Certificate;
let caKey: CryptoKey;
const clients: Client[] = [];

beforeAll(async () => {
  const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  caCert = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=Operator CA",
    keys,
    signingAlgorithm: EC,
    notAfter: new Date(Date.now() + 365 * 86_400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  caKey = keys.privateKey;
  const dir = tempDir("secumon-opca-");
  writeFileSync(join(dir, "ca.pem"), caCert.toString("pem"));
  writeFileSync(
    join(dir, "ca.key"),
    toPem(new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey)), "PRIVATE KEY"),
  );
  h = await startGateway({
    tls: { ca_file: join(dir, "ca.pem"), ca_key_file: join(dir, "ca.key") },
    rate_limiting: { enabled: true, requests_per_second: 1, burst: 3 },
    enrollment_failures_per_minute: 5,
    max_streams_per_source: 2,
  });
  tenant = await createTenant(h.sql);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await h?.stop();
});

const inv = (id: string) => {
  const raw = encodePayload("inventory", { time_unix_ms: Date.now() });
  return { batch_id: id, compression: 1, uncompressed_size: raw.byteLength, payload: compress("lz4", raw) };
};

describe("operator CA and limits", () => {
  test("client certificates are signed by the operator's CA", async () => {
    expect(h.gw.caPem).toBe(caCert.toString("pem"));
    const id = await enrollAgent(h, tenant);
    const cert = new x509.X509Certificate(id.certPem);
    expect(await cert.verify({ publicKey: caCert.publicKey })).toBe(true);
  });

  test("an expired certificate from the right CA is UNAUTHENTICATED", async () => {
    const id = await enrollAgent(h, tenant);
    const expired = await expiredIdentity(caCert, caKey, id);
    const c = identityClient(expired, h.address);
    clients.push(c);
    const e = await refusal(unaryCall(c, "SendInventory", inv("expired-1")));
    expect(e.code).toBe(status.UNAUTHENTICATED);
    expect(await countMessages(h.nc, `secumon.*.${tenant}.${id.id}`)).toBe(0);
    expect(await agentPresence(h.sql, id.id)).toEqual({ status: "pending", last_seen: null }); // nothing written in the database either
  });

  test("an open stream is closed UNAUTHENTICATED when its client certificate expires", async () => {
    const id = await enrollAgent(h, tenant);
    const short = await shortLivedIdentity(caCert, caKey, id, 4000);
    const c = identityClient(short, h.address);
    clients.push(c);
    const s = openStream(c, "SendMetrics");
    const raw = encodePayload("metrics", { system: [{ time_unix_ms: Date.now(), cpu_usage: 1 }] });
    s.send({ batch_id: "short-1", compression: 0, uncompressed_size: raw.byteLength, payload: raw });
    expect((await s.next()).code).toBe(0);
    // nothing more is sent: the gateway closes the stream itself when notAfter passes
    const end = await s.closed;
    expect(end.code).toBe(status.UNAUTHENTICATED);
    expect(end.details).toMatch(/certificate .* expired at .*renew/i);
    expect(await countMessages(h.nc, `secumon.metrics.${tenant}.${id.id}`)).toBe(1);
    // the Connect stream too
    const c2 = identityClient(await shortLivedIdentity(caCert, caKey, id, 3000), h.address);
    clients.push(c2);
    const conn = openStream(c2, "Connect");
    conn.send({ heartbeat: { sent_unix_ms: Date.now() } });
    const end2 = await conn.closed;
    expect(end2.code).toBe(status.UNAUTHENTICATED);
    expect(end2.details).toMatch(/renew/i);
  }, 20_000);

  test("an open Connect is asked to re-key before its certificate ends, not only at connect", async () => {
    const id = await enrollAgent(h, tenant);
    // valid from 2 s ago for 10 s more: re-key is due a third of the lifetime before the end (~6 s from now)
    const c = identityClient(await shortLivedIdentity(caCert, caKey, id, 10_000, 2000), h.address);
    clients.push(c);
    const conn = openStream(c, "Connect");
    const next = () => conn.next() as unknown as Promise<Record<string, Record<string, unknown> | undefined>>;
    conn.send({ heartbeat: { sent_unix_ms: Date.now() } });
    const kinds: string[] = [];
    for (let i = 0; i < 3; i++) kinds.push(String((await next()).body)); // the oneof's case (oneofs: true)
    // config at connect, the heartbeat's answer, then (later, on a timer) the re-key request
    expect(kinds).toEqual(["config", "heartbeat_ack", "rekey"]);
    const end = await conn.closed;
    expect(end.code).toBe(status.UNAUTHENTICATED); // never renewed: closed when it expires
  }, 20_000);

  test("streams beyond max_streams_per_source are RESOURCE_EXHAUSTED; closing one frees its slot", async () => {
    const id = await enrollAgent(h, tenant);
    const c = identityClient(id, h.address);
    clients.push(c);
    const a = openStream(c, "Connect");
    const b = openStream(c, "SendLogs");
    a.send({ heartbeat: { sent_unix_ms: Date.now() } });
    await a.next(); // both are open once they answered
    const raw = encodePayload("logs", { entries: [{ time_unix_ms: Date.now(), message: "x" }] });
    b.send({ batch_id: "slot-1", compression: 0, uncompressed_size: raw.byteLength, payload: raw });
    expect((await b.next()).code).toBe(0);
    const third = openStream(c, "SendMetrics");
    const refused = await third.closed;
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.details).toMatch(/too many open streams/);
    b.end();
    expect((await b.closed).code).toBe(status.OK);
    const again = openStream(c, "SendLogs");
    again.send({ batch_id: "slot-2", compression: 0, uncompressed_size: raw.byteLength, payload: raw });
    expect((await again.next()).code).toBe(0);
    again.end();
    a.end();
    await again.closed;
    expect(await countMessages(h.nc, `secumon.logs.${tenant}.${id.id}`)).toBe(2);
  });

  test("beyond the per-agent rate, batches are answered RESOURCE_EXHAUSTED with a retry hint", async () => {
    const id = await enrollAgent(h, tenant);
    const c = identityClient(id, h.address);
    clients.push(c);
    const s = openStream(c, "SendMetrics");
    const raw = encodePayload("metrics", { system: [{ time_unix_ms: Date.now(), cpu_usage: 1 }] });
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) {
      s.send({ batch_id: `rl-${i}`, compression: 0, uncompressed_size: raw.byteLength, payload: raw });
      const ack = await s.next();
      codes.push(ack.code);
      if (ack.code === status.RESOURCE_EXHAUSTED) expect(ack.retry_after_ms).toBeGreaterThan(0);
    }
    s.end();
    expect(codes.filter((c) => c === 0).length).toBeGreaterThanOrEqual(3);
    expect(codes).toContain(status.RESOURCE_EXHAUSTED);
    const stored = await countMessages(h.nc, `secumon.metrics.${tenant}.${id.id}`);
    expect(stored).toBe(codes.filter((c) => c === 0).length);
  });

  test("the rate limit also covers heartbeats, GetAssignments and RenewCertificate", async () => {
    const id = await enrollAgent(h, tenant);
    const c = identityClient(id, h.address);
    clients.push(c);
    // burst 3 at 1/s: the first answers, then the stream is ended
    const conn = openStream(c, "Connect");
    for (let i = 0; i < 6; i++) conn.send({ heartbeat: { sent_unix_ms: Date.now() } });
    const end = await conn.closed;
    expect(end.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(end.details).toMatch(/rate limit.*reconnect in \d+ ms/);
    const { csrPem } = await generateKeyAndCsr();
    const renewals = await Promise.all(
      Array.from({ length: 4 }, () =>
        unaryCall(c, "RenewCertificate", { csr_pem: csrPem }).then(
          () => null,
          (e: { code: number; details: string }) => e,
        ),
      ),
    );
    const limited = renewals.find((e) => e?.code === status.RESOURCE_EXHAUSTED);
    expect(limited?.details).toMatch(/gateway.rate_limiting.*retry in \d+ ms/);
    const probe = await enroll({
      address: h.address,
      caPem: h.gw.caPem,
      token: await createToken(h.sql, tenant, { kind: "probe" }),
      kind: "probe",
    });
    const pc = identityClient(probe, h.address);
    clients.push(pc);
    // 8 at once against a burst of 3 at 1/s: at most 3 + what refilled while they ran are answered
    const t0 = performance.now();
    const codes = await Promise.all(
      Array.from({ length: 8 }, () =>
        unaryCall(pc, "GetAssignments", {}).then(
          () => 0,
          (e: { code: number }) => e.code,
        ),
      ),
    );
    const refilled = Math.ceil((performance.now() - t0) / 1000);
    const answered = codes.filter((code) => code === 0).length;
    expect(answered).toBeGreaterThanOrEqual(3);
    expect(answered).toBeLessThanOrEqual(3 + refilled);
    expect(codes.filter((code) => code !== 0).every((code) => code === status.RESOURCE_EXHAUSTED)).toBe(true);
    expect(codes).toContain(status.RESOURCE_EXHAUSTED);
  });

  test("repeated failed enrollments from one address are throttled with RESOURCE_EXHAUSTED", async () => {
    const c = makeClient("AgentService", h.address, h.gw.caPem);
    clients.push(c);
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) {
      codes.push(
        (await refusal(unaryCall(c, "Enroll", { token: `smet_${String(i).padStart(43, "z")}`, csr_pem: "" })))
          .code,
      );
    }
    expect(
      codes.slice(0, 5).every((c) => c === status.INVALID_ARGUMENT || c === status.UNAUTHENTICATED),
    ).toBe(true);
    expect(codes.slice(5)).toEqual([
      status.RESOURCE_EXHAUSTED,
      status.RESOURCE_EXHAUSTED,
      status.RESOURCE_EXHAUSTED,
    ]);
  });
});

describe("readiness (the collector's shared /ready lists each role's reason)", () => {
  test("ready only while the gRPC server listens; stop twice is safe", async () => {
    const g = await startGateway();
    expect(g.gw.readiness?.()).toBeNull();
    await g.gw.stop();
    expect(g.gw.readiness?.()).toBe("gateway: gRPC server not listening yet");
    await g.stop(); // stops the gateway again, then closes NATS
    expect(g.gw.readiness?.()).toMatch(/not listening/);
  });
});

describe("idle connections", () => {
  test("a connection with no call for gateway.idle_timeout is closed; one holding a stream is not", async () => {
    const g = await startGateway({ idle_timeout: "1s", rate_limiting: { enabled: false } });
    const own: Client[] = [];
    try {
      const t = await createTenant(g.sql);
      const idle = identityClient(await enrollAgent(g, t), g.address);
      const busy = identityClient(await enrollAgent(g, t), g.address);
      own.push(idle, busy);
      // one unary call (refused: a bad token) connects it, then nothing more
      expect((await refusal(unaryCall(idle, "Enroll", { token: "smet_bad", csr_pem: "" }))).code).toBe(
        status.UNAUTHENTICATED,
      );
      expect(idle.getChannel().getConnectivityState(false)).toBe(connectivityState.READY);
      const conn = openStream(busy, "Connect");
      conn.send({ heartbeat: { sent_unix_ms: Date.now() } });
      await conn.next(); // configuration at connect
      await waitFor(
        async () => idle.getChannel().getConnectivityState(false) === connectivityState.IDLE || undefined,
        10_000,
        "the idle connection to be closed by the gateway",
      );
      // the one with an open stream is still there and answers
      expect(busy.getChannel().getConnectivityState(false)).toBe(connectivityState.READY);
      conn.send({ heartbeat: { sent_unix_ms: Date.now() } });
      expect(await conn.next()).toBeTruthy();
      conn.end();
      await conn.closed;
    } finally {
      for (const c of own) c.close();
      await g.stop();
    }
  });
});

describe("max_connections", () => {
  test("beyond it a new stream is RESOURCE_EXHAUSTED, counted, and the open ones keep working", async () => {
    const g = await startGateway({ max_connections: 2, rate_limiting: { enabled: false } });
    const own: Client[] = [];
    try {
      const t = await createTenant(g.sql);
      const ids = [];
      for (let i = 0; i < 3; i++) {
        ids.push(await enroll({ address: g.address, caPem: g.gw.caPem, token: await createToken(g.sql, t) }));
      }
      const cs = ids.map((id) => identityClient(id, g.address));
      own.push(...cs);
      const open = [openStream(cs[0]!, "Connect"), openStream(cs[1]!, "Connect")];
      for (const o of open) {
        o.send({ heartbeat: { sent_unix_ms: Date.now() } });
        await o.next();
      }
      const refused = await openStream(cs[2]!, "SendMetrics").closed;
      expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(refused.details).toMatch(/connection limit; reconnect later/);
      expect(g.metrics.render()).toContain('secumon_gateway_refused_calls_total{reason="max_connections"} 1');
      expect(await countMessages(g.nc, `secumon.*.${t}.${ids[2]!.id}`)).toBe(0);
      // the open streams still answer; once one closes, the third agent gets in
      open[0]!.send({ heartbeat: { sent_unix_ms: Date.now() } });
      expect(await open[0]!.next()).toBeTruthy();
      open[1]!.end();
      await open[1]!.closed;
      const s = openStream(cs[2]!, "SendMetrics");
      const raw = encodePayload("metrics", { system: [{ time_unix_ms: Date.now(), cpu_usage: 1 }] });
      s.send({ batch_id: "after-free", compression: 0, uncompressed_size: raw.byteLength, payload: raw });
      expect((await s.next()).code).toBe(0);
      s.end();
      open[0]!.end();
      await s.closed;
    } finally {
      for (const c of own) c.close();
      await g.stop();
    }
  });
});

describe("simulator", () => {
  test("enrolls agents, streams every agent kind, and every acknowledged batch is in JetStream", async () => {
    const g = await startGateway({ rate_limiting: { enabled: false } });
    try {
      const t = await createTenant(g.sql);
      const sim = createSimulator({
        gatewayAddress: g.address,
        caPem: g.gw.caPem,
        token: await createToken(g.sql, t),
        agents: 3,
        ratePerSecond: 10,
        samplesPerBatch: 50,
        kinds: ["metrics", "logs", "inventory"],
      });
      await sim.start();
      const deadline = Date.now() + 20_000;
      while (sim.stats().acked < 30 && Date.now() < deadline) await Bun.sleep(50);
      await sim.stop();
      const st = sim.stats();
      expect(st.enrolled).toBe(3);
      expect(st.rejected).toBe(0);
      expect(st.acked).toBeGreaterThanOrEqual(30);
      expect(Object.keys(st.ackedSamples).sort()).toEqual(["inventory", "logs", "metrics"]);
      expect(await countMessages(g.nc, `secumon.*.${t}.>`)).toBeGreaterThanOrEqual(st.acked);
    } finally {
      await g.stop();
    }
  });

  test("simulated probes report scan results and SNMP samples for the targets GetAssignments gives them", async () => {
    const g = await startGateway({ rate_limiting: { enabled: false } });
    try {
      const t = await createTenant(g.sql);
      const token = await createToken(g.sql, t, { kind: "probe" });
      const probe = await enroll({ address: g.address, caPem: g.gw.caPem, token, kind: "probe", name: "p1" });
      const targets = await withAdmin(
        g.sql,
        (tx) => tx<{ id: string }[]>`
          insert into targets (tenant_id, name, address, type, tests)
          select ${t}, 'sw-' || n, '10.9.0.' || n, 'snmp_device', ${tx.json([{ type: "snmp", interval_seconds: 60 }])}
            from generate_series(1, 2) n returning id`,
      );
      await withAdmin(
        g.sql,
        (tx) => tx`insert into target_probes (tenant_id, target_id, probe_id)
          select ${t}, unnest(${targets.map((x) => x.id)}::uuid[]), ${probe.id}`,
      );
      const sim = createSimulator({
        gatewayAddress: g.address,
        caPem: g.gw.caPem,
        identities: [probe],
        agents: 1,
        ratePerSecond: 20,
        samplesPerBatch: 10,
        kinds: ["scans", "snmp"],
      });
      await sim.start();
      await waitFor(async () => sim.stats().acked >= 6 || undefined, 20_000, "probe batches acknowledged");
      await sim.stop();
      expect(sim.stats().rejected).toBe(0);
      const named = new Set<string>();
      for (const kind of ["scans", "snmp"] as const) {
        const [m] = await telemetryMessages(g.nc, `secumon.${kind}.${t}.${probe.id}`, 1);
        const raw = decompressBounded(
          m!.headers["Secumon-Compression"]!,
          m!.data,
          Number(m!.headers["Secumon-Uncompressed-Size"]),
          1 << 24,
        );
        const p = decodePayload(kind, raw) as {
          results?: { target_id: string }[];
          samples?: { target_id: string }[];
        };
        for (const r of p.results ?? p.samples ?? []) named.add(r.target_id);
      }
      expect([...named].sort()).toEqual(targets.map((x) => x.id).sort());
    } finally {
      await g.stop();
    }
  });

  test("keeps what is not acknowledged while the gateway is down and resends it after reconnecting; each batch is stored once", async () => {
    const a = await startGateway({ rate_limiting: { enabled: false } });
    const port = a.gw.port;
    let b: Harness | null = null;
    try {
      const t = await createTenant(a.sql);
      const sim = createSimulator({
        gatewayAddress: a.address,
        caPem: a.gw.caPem,
        token: await createToken(a.sql, t),
        agents: 2,
        ratePerSecond: 20,
        samplesPerBatch: 20,
        kinds: ["metrics", "logs", "inventory"],
      });
      await sim.start();
      await waitFor(async () => sim.stats().acked >= 10 || undefined, 20_000, "first acknowledgements");
      await a.gw.stop(); // the gateway goes away; the agents keep producing into their buffers
      await waitFor(
        async () => (sim.stats().pending >= 20 && sim.stats().streamErrors > 0) || undefined,
        20_000,
        "unacknowledged batches to pile up",
      );
      const ackedWhileDown = sim.stats().acked;
      // the same collector comes back on the same port (same database, same CA)
      b = await startGateway({ rate_limiting: { enabled: false }, grpc_port: port }, {}, { sql: a.sql });
      await waitFor(
        async () => (sim.stats().acked >= ackedWhileDown + 40 && sim.stats().resent > 0) || undefined,
        30_000,
        "the buffered batches to be resent and acknowledged",
      );
      await sim.stop();
      const st = sim.stats();
      expect(st.rejected).toBe(0);
      // every acknowledged batch is in JetStream, and no batch id twice (resends deduplicated)
      const n = await countMessages(b.nc, `secumon.*.${t}.>`);
      expect(n).toBeGreaterThanOrEqual(st.acked);
      const msgs = await telemetryMessages(b.nc, `secumon.*.${t}.>`, n);
      const keys = msgs.map((m) => m.headers["Nats-Msg-Id"]);
      expect(new Set(keys).size).toBe(n);
    } finally {
      await b?.stop();
      await a.stop();
    }
  }, 90_000);
});
