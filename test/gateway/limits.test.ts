/**
 * A gateway with an operator-supplied CA (gateway.tls.ca_file/ca_key_file) and tight limits: expired
 * certificates, per-agent rate limit, per-IP enrollment-failure throttling, and the simulator end to end.
 */
import "reflect-metadata"; // before @peculiar/x509
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Client, status } from "@grpc/grpc-js";
import * as x509 from "@peculiar/x509";
import { toPem } from "../../src/pki/ca.ts";
import { compress, encodePayload } from "../../src/protocol/index.ts";
import { enroll, identityClient, makeClient, unaryCall } from "../../src/simulator/client.ts";
import { createSimulator } from "../../src/simulator/index.ts";
import { tempDir } from "../support/tmp.ts";
import { countMessages, createTenant, createToken, type Harness, startGateway } from "./harness.ts";
import { expiredIdentity, openStream, refusal, shortLivedIdentity } from "./helpers.ts";

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
    const id = await enroll({
      address: h.address,
      caPem: h.gw.caPem,
      token: await createToken(h.sql, tenant),
    });
    const cert = new x509.X509Certificate(id.certPem);
    expect(await cert.verify({ publicKey: caCert.publicKey })).toBe(true);
  });

  test("an expired certificate from the right CA is UNAUTHENTICATED", async () => {
    const id = await enroll({
      address: h.address,
      caPem: h.gw.caPem,
      token: await createToken(h.sql, tenant),
    });
    const expired = await expiredIdentity(caCert, caKey, id);
    const c = identityClient(expired, h.address);
    clients.push(c);
    const e = await refusal(unaryCall(c, "SendInventory", inv("expired-1")));
    expect(e.code).toBe(status.UNAUTHENTICATED);
    expect(await countMessages(h.nc, `secumon.*.${tenant}.${id.id}`)).toBe(0);
  });

  test("an open stream is closed UNAUTHENTICATED when its client certificate expires", async () => {
    const id = await enroll({
      address: h.address,
      caPem: h.gw.caPem,
      token: await createToken(h.sql, tenant),
    });
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

  test("beyond the per-agent rate, batches are answered RESOURCE_EXHAUSTED with a retry hint", async () => {
    const id = await enroll({
      address: h.address,
      caPem: h.gw.caPem,
      token: await createToken(h.sql, tenant),
    });
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
});
