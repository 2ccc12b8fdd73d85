/**
 * The gateway over real mTLS (grpc-js clients) against the run's nats-server and PostgreSQL: enrollment,
 * the telemetry path into JetStream, and every refusal of issue #3 — none may crash it or write anything.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Client, Metadata, status } from "@grpc/grpc-js";
import { jetstream } from "@nats-io/jetstream";
import { compress, encodePayload } from "../../src/protocol/index.ts";
import { withLz4Prefix, zstdRleBomb } from "../../src/protocol/testing.ts";
import { enroll, type Identity, identityClient, makeClient, unaryCall } from "../../src/simulator/client.ts";
import { withAdmin } from "../../src/storage/db.ts";
import { waitFor } from "../support/collector.ts";
import {
  agentPresence,
  countMessages,
  createTenant,
  createToken,
  enrollAgent as enrollNew,
  type Harness,
  startGateway,
  telemetryMessages,
} from "./harness.ts";
import { foreignIdentity, generateKeyAndCsr, openStream, refusal } from "./helpers.ts";

/** `make soak-gateway` runs 10,000. */
const BAD_TOKENS = Number(process.env.BAD_TOKENS ?? 300);
let h: Harness;
let tenant: string;
let agent: Identity;
let client: Client;
const clients: Client[] = [];

const metrics = () =>
  encodePayload("metrics", {
    system: [{ time_unix_ms: Date.now(), cpu_usage: 12.5, mem_used: 1e9 }],
    disks: [{ time_unix_ms: Date.now(), device: "sda1", used_bytes: 5e9 }],
  });

/** A sample's value in the gateway's /metrics text (0 when absent). */
function metric(name: string, labels: string): number {
  const line = h.metrics
    .render()
    .split("\n")
    .find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

function batch(id: string, raw: Uint8Array, c: "none" | "lz4" | "zstd" = "lz4") {
  return {
    batch_id: id,
    compression: { none: 0, lz4: 1, zstd: 2 }[c],
    uncompressed_size: raw.byteLength,
    payload: compress(c, raw),
  };
}

function track<T extends Client>(c: T): T {
  clients.push(c);
  return c;
}

const enrollAgent = (t = tenant): Promise<Identity> => enrollNew(h, t);

beforeAll(async () => {
  h = await startGateway({ max_message_bytes: 1024 * 1024, enrollment_failures_per_minute: 100_000 });
  tenant = await createTenant(h.sql);
  agent = await enrollAgent();
  client = track(identityClient(agent, h.address));
});

afterAll(async () => {
  for (const c of clients) c.close();
  await h?.stop();
});

describe("enrollment", () => {
  test("creates the agent in the token's tenant, consumes one use, returns a CA-signed certificate", async () => {
    const token = await createToken(h.sql, tenant, { maxUses: 2 });
    const id = await enroll({
      address: h.address,
      caPem: h.gw.caPem,
      token,
      name: "web-01",
      info: { hostname: "web-01", os: "debian", ip_addresses: ["10.0.0.5", "not-an-ip"], tags: ["prod"] },
    });
    expect(id.tenantId).toBe(tenant);
    expect(id.certPem).toContain("BEGIN CERTIFICATE");
    expect(id.caPem).toBe(h.gw.caPem);
    const [row] = await withAdmin(
      h.sql,
      (tx) =>
        tx`select tenant_id, name, hostname, os, host(ip_addresses[1]) as ip, tags, status from agents where id = ${id.id}`,
    );
    expect(row).toMatchObject({
      tenant_id: tenant,
      name: "web-01",
      hostname: "web-01",
      os: "debian",
      ip: "10.0.0.5",
      tags: ["prod"],
      status: "pending",
    });
    const [t] = await withAdmin(
      h.sql,
      (tx) => tx`select uses from enrollment_tokens where tenant_id = ${tenant} and max_uses = 2`,
    );
    expect(t!.uses).toBe(1);
  });

  test("expired, revoked, exhausted, unknown and malformed tokens are refused UNAUTHENTICATED, counted; nothing is written", async () => {
    const before = await agentCount();
    const reasons = ["expired_token", "revoked_token", "exhausted_token", "unknown_token", "bad_token"];
    const counted = () =>
      reasons.map((r) => metric("secumon_gateway_enrollments_total", `kind="agent",result="${r}"`));
    const countedBefore = counted();
    const expired = await createToken(h.sql, tenant, { expiresInMs: -1000 });
    const revoked = await createToken(h.sql, tenant, { revoked: true });
    const once = await createToken(h.sql, tenant, { maxUses: 1 });
    await enroll({ address: h.address, caPem: h.gw.caPem, token: once });
    const cases: [string, RegExp][] = [
      [expired, /expired/],
      [revoked, /revoked/],
      [once, /maximum number of times/],
      [`smet_${"A".repeat(43)}`, /unknown enrollment token/],
      ["not-a-token", /invalid enrollment token/],
    ];
    for (const [token, msg] of cases) {
      const e = await refusal(enroll({ address: h.address, caPem: h.gw.caPem, token }));
      expect(e.code).toBe(status.UNAUTHENTICATED);
      expect(e.details).toMatch(msg);
    }
    expect(await agentCount()).toBe(before + 1);
    // each refusal is counted under its reason (secumon_gateway_enrollments_total on /metrics)
    expect(counted().map((n, i) => n - countedBefore[i]!)).toEqual([1, 1, 1, 1, 1]);
    // and none consumed a use
    const [t] = await withAdmin(
      h.sql,
      (tx) => tx<{ n: number }[]>`select coalesce(sum(uses), 0)::int as n from enrollment_tokens
        where tenant_id = ${tenant} and (revoked_at is not null or expires_at <= now())`,
    );
    expect(t!.n).toBe(0);
  });

  test("a probe token on the AgentService is PERMISSION_DENIED and not consumed", async () => {
    const token = await createToken(h.sql, tenant, { kind: "probe", maxUses: 1 });
    const e = await refusal(enroll({ address: h.address, caPem: h.gw.caPem, token, kind: "agent" }));
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(e.details).toMatch(/for a probe/);
    const probe = await enroll({ address: h.address, caPem: h.gw.caPem, token, kind: "probe" });
    expect(probe.kind).toBe("probe");
  });

  test("a bad CSR is INVALID_ARGUMENT and does not consume the token", async () => {
    const token = await createToken(h.sql, tenant, { maxUses: 1 });
    const c = track(makeClient("AgentService", h.address, h.gw.caPem));
    for (const csr_pem of [
      "",
      "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
    ]) {
      const e = await refusal(unaryCall(c, "Enroll", { token, csr_pem }));
      expect(e.code).toBe(status.INVALID_ARGUMENT);
    }
    // a CSR whose signature does not match (tampered): take a valid CSR and flip a byte of the signature
    const { csrPem } = await generateKeyAndCsr();
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 2]! ^= 0xff;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    expect((await refusal(unaryCall(c, "Enroll", { token, csr_pem: tampered }))).code).toBe(
      status.INVALID_ARGUMENT,
    );
    await enroll({ address: h.address, caPem: h.gw.caPem, token }); // still usable once
  });

  test(`${BAD_TOKENS} bad-token enrollments are each refused, write nothing, and the gateway keeps serving`, async () => {
    const rssBefore = process.memoryUsage().rss;
    const before = await agentCount();
    const unknownBefore = metric("secumon_gateway_enrollments_total", 'kind="agent",result="unknown_token"');
    const { csrPem } = await generateKeyAndCsr();
    const codes = new Map<number, number>();
    for (let round = 0; round < BAD_TOKENS / 30; round++) {
      const errs = await Promise.all(
        Array.from({ length: 30 }, async (_, i) => {
          // each attempt on a connection of its own (a new TLS handshake), as a scanner would
          const c = makeClient("AgentService", h.address, h.gw.caPem, {
            options: { "grpc.use_local_subchannel_pool": 1 },
          });
          try {
            return await refusal(
              unaryCall(c, "Enroll", {
                token: `smet_${String(round * 30 + i).padStart(43, "x")}`,
                csr_pem: csrPem,
              }),
            );
          } finally {
            c.close();
          }
        }),
      );
      for (const e of errs) codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
    }
    expect([...codes.entries()]).toEqual([[status.UNAUTHENTICATED, Math.ceil(BAD_TOKENS / 30) * 30]]);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 1024 * 1024);
    expect(await agentCount()).toBe(before);
    expect(
      metric("secumon_gateway_enrollments_total", 'kind="agent",result="unknown_token"') - unknownBefore,
    ).toBe(Math.ceil(BAD_TOKENS / 30) * 30);
    expect(h.gw.readiness?.()).toBeNull();
    expect((await enrollAgent()).tenantId).toBe(tenant);
  });

  test("a certificate can be renewed over mTLS and the new one works", async () => {
    const id = await enrollAgent();
    const c = track(identityClient(id, h.address));
    const { keyPem, csrPem } = await generateKeyAndCsr();
    const res = await unaryCall<{ certificate_pem: string; certificate_expires_unix_ms: number }>(
      c,
      "RenewCertificate",
      { csr_pem: csrPem },
    );
    expect(res.certificate_expires_unix_ms).toBeGreaterThan(Date.now());
    const renewed = track(identityClient({ ...id, certPem: res.certificate_pem, keyPem }, h.address));
    const raw = encodePayload("inventory", { time_unix_ms: Date.now() });
    const ack = await unaryCall<{ code: number }>(renewed, "SendInventory", batch("renewed-1", raw));
    expect(ack.code).toBe(0);
    // renewal needs the certificate
    const anon = track(makeClient("AgentService", h.address, h.gw.caPem));
    expect((await refusal(unaryCall(anon, "RenewCertificate", { csr_pem: csrPem }))).code).toBe(
      status.UNAUTHENTICATED,
    );
  });
});

async function agentCount(): Promise<number> {
  const [r] = await withAdmin(h.sql, (tx) => tx<{ n: number }[]>`select count(*)::int as n from agents`);
  return r!.n;
}

describe("telemetry path", () => {
  test("a streamed batch lands in JetStream with the certificate's tenant and source, acked after storage", async () => {
    const s = openStream(client, "SendMetrics");
    const raw = metrics();
    s.send(batch("m-0001", raw));
    const ack = await s.next();
    expect(ack).toEqual({ batch_id: "m-0001", code: 0, message: "", retry_after_ms: 0 });
    const [m] = await telemetryMessages(h.nc, `secumon.metrics.${tenant}.${agent.id}`, 1);
    expect(m!.subject).toBe(`secumon.metrics.${tenant}.${agent.id}`);
    expect(m!.headers).toMatchObject({
      "Nats-Msg-Id": `${agent.id}:m-0001`,
      "Secumon-Batch-Id": "m-0001",
      "Secumon-Tenant": tenant,
      "Secumon-Source": agent.id,
      "Secumon-Source-Type": "agent",
      "Secumon-Compression": "lz4",
      "Secumon-Uncompressed-Size": String(raw.byteLength),
    });
    expect(Number(m!.headers["Secumon-Received-At"])).toBeGreaterThan(Date.now() - 60_000);
    expect(Buffer.from(m!.data).equals(Buffer.from(compress("lz4", raw)))).toBe(true); // forwarded as sent
    // a resent batch (same id) is acknowledged and stored once
    s.send(batch("m-0001", raw));
    expect((await s.next()).code).toBe(0);
    s.end();
    expect((await s.closed).code).toBe(status.OK);
    expect(await countMessages(h.nc, `secumon.metrics.${tenant}.${agent.id}`)).toBe(1);
  });

  test("bad batches are refused one by one with INVALID_ARGUMENT and never reach JetStream", async () => {
    const id = await enrollAgent();
    const c = track(identityClient(id, h.address));
    const s = openStream(c, "SendMetrics");
    const raw = metrics();
    const lz = compress("lz4", raw);
    const logs = encodePayload("logs", {
      entries: [{ time_unix_ms: 1, level: 4, source: "x", message: "hello" }],
    });
    const bad: [string, object][] = [
      [
        "garbage",
        {
          batch_id: "garbage",
          compression: 0,
          uncompressed_size: 12,
          payload: Buffer.from("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
        },
      ],
      ["truncated", { ...batch("truncated", raw.subarray(0, raw.length - 3), "none") }],
      ["wrong-type", batch("wrong-type", logs)],
      ["size-smaller", { ...batch("size-smaller", raw), uncompressed_size: raw.byteLength - 1 }],
      ["size-larger", { ...batch("size-larger", raw), uncompressed_size: raw.byteLength + 1 }],
      [
        "zstd-wrong-size",
        { ...batch("zstd-wrong-size", raw, "zstd"), uncompressed_size: raw.byteLength + 10 },
      ],
      [
        "lz4-bomb",
        {
          batch_id: "lz4-bomb",
          compression: 1,
          uncompressed_size: 0xffffffff,
          payload: withLz4Prefix(lz, 0xffffffff),
        },
      ],
      [
        "lz4-liar",
        {
          batch_id: "lz4-liar",
          compression: 1,
          uncompressed_size: 100,
          payload: withLz4Prefix(compress("lz4", new Uint8Array(4 << 20)), 100),
        },
      ],
      [
        "zstd-bomb",
        { batch_id: "zstd-bomb", compression: 2, uncompressed_size: 4096, payload: zstdRleBomb(8192) },
      ],
      [
        "zstd-bomb-big",
        { batch_id: "zstd-bomb-big", compression: 2, uncompressed_size: 2 ** 31, payload: zstdRleBomb(8192) },
      ],
      ["unknown-compression", { ...batch("unknown-compression", raw), compression: 7 }],
      ["bad id!", batch("bad id!", raw)],
    ];
    for (const [name, b] of bad) {
      s.send(b);
      const ack = await s.next();
      expect({ name, code: ack.code }).toEqual({ name, code: status.INVALID_ARGUMENT });
      expect(ack.message.length).toBeGreaterThan(10);
    }
    // the stream is still usable after refusals
    s.send(batch("good-after-bad", raw));
    expect((await s.next()).code).toBe(0);
    s.end();
    await s.closed;
    expect(await countMessages(h.nc, `secumon.*.${tenant}.${id.id}`)).toBe(1);
  });

  test("bytes that are not a TelemetryBatch end the stream with INVALID_ARGUMENT", async () => {
    const id = await enrollAgent();
    const c = track(identityClient(id, h.address));
    const call = c.makeBidiStreamRequest(
      "/secumon.v1.AgentService/SendMetrics",
      (b: Buffer) => b,
      (b: Buffer) => b,
      new Metadata(),
    );
    const closed = new Promise<{ code: number }>((r) => call.on("error", (e: { code: number }) => r(e)));
    call.on("data", () => {});
    call.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01])); // field 1 claims ~4 GB
    expect((await closed).code).toBe(status.INVALID_ARGUMENT);
    expect(await countMessages(h.nc, `secumon.*.${tenant}.${id.id}`)).toBe(0);
  });

  test("garbage and truncated bytes on unary calls (Enroll, SendInventory) are INVALID_ARGUMENT; nothing is written", async () => {
    const before = await agentCount();
    const token = await createToken(h.sql, tenant, { maxUses: 1 });
    const id = await enrollAgent();
    const raw = (c: Client, method: string, bytes: Buffer) =>
      new Promise<{ code: number; details: string }>((resolve) =>
        c.makeUnaryRequest(
          method,
          (b: Buffer) => b,
          (b: Buffer) => b,
          bytes,
          new Metadata(),
          (err) => resolve(err ?? { code: 0, details: "" }),
        ),
      );
    const anon = track(makeClient("AgentService", h.address, h.gw.caPem));
    const mtls = track(identityClient(id, h.address));
    const tokenField = Buffer.concat([Buffer.from([0x0a, token.length]), Buffer.from(token)]);
    for (const [c, method, bytes] of [
      [anon, "/secumon.v1.AgentService/Enroll", Buffer.from([0xff, 0xff, 0xff, 0xff])],
      [anon, "/secumon.v1.AgentService/Enroll", tokenField.subarray(0, tokenField.length - 5)], // truncated
      [mtls, "/secumon.v1.AgentService/SendInventory", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01])],
      [mtls, "/secumon.v1.AgentService/SendInventory", Buffer.from([0x10, 0x80])], // truncated varint
    ] as const) {
      const e = await raw(c, method, bytes);
      expect({ method, code: e.code }).toEqual({ method, code: status.INVALID_ARGUMENT });
      expect(e.details).toMatch(/malformed request/);
    }
    expect(await agentCount()).toBe(before + 1); // only the agent enrolled above
    const [t] = await withAdmin(
      h.sql,
      (tx) => tx<
        { uses: number }[]
      >`select uses from enrollment_tokens where tenant_id = ${tenant} and max_uses = 1
        order by created_at desc limit 1`,
    );
    expect(t!.uses).toBe(0);
    expect(await countMessages(h.nc, `secumon.*.${tenant}.${id.id}`)).toBe(0);
  });

  test("a message over max_message_bytes is RESOURCE_EXHAUSTED", async () => {
    const c = track(identityClient(agent, h.address));
    const big = crypto.getRandomValues(new Uint8Array(60_000));
    const payload = new Uint8Array(2 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += big.length)
      payload.set(big.subarray(0, Math.min(big.length, payload.length - i)), i);
    const e = await refusal(
      unaryCall(c, "SendInventory", {
        batch_id: "huge",
        compression: 0,
        uncompressed_size: payload.length,
        payload,
      }),
    );
    expect(e.code).toBe(status.RESOURCE_EXHAUSTED);
  });

  test("probes: enroll, GetAssignments from target_probes, SendResults", async () => {
    const token = await createToken(h.sql, tenant, { kind: "probe" });
    const probe = await enroll({
      address: h.address,
      caPem: h.gw.caPem,
      token,
      kind: "probe",
      name: "edge-probe",
    });
    const [target] = await withAdmin(
      h.sql,
      (tx) =>
        tx<
          { id: string }[]
        >`insert into targets (tenant_id, name, address, type, tests) values (${tenant}, 'site', 'https://example.test', 'website', ${tx.json([{ type: "http", interval_seconds: 60 }])}) returning id`,
    );
    await withAdmin(
      h.sql,
      (tx) =>
        tx`insert into target_probes (tenant_id, target_id, probe_id) values (${tenant}, ${target!.id}, ${probe.id})`,
    );
    const c = track(identityClient(probe, h.address));
    const a = await unaryCall<{
      version: string;
      unchanged: boolean;
      targets: { id: string; tests_json: string }[];
    }>(c, "GetAssignments", { known_version: "" });
    expect(a.targets.map((t) => t.id)).toEqual([target!.id]);
    expect(JSON.parse(a.targets[0]!.tests_json)).toEqual([{ type: "http", interval_seconds: 60 }]);
    const again = await unaryCall<{ unchanged: boolean; targets: unknown[] }>(c, "GetAssignments", {
      known_version: a.version,
    });
    expect(again).toMatchObject({ unchanged: true, targets: [] });
    // a disabled target leaves the assignments: a new version without it (then enabled again)
    await withAdmin(h.sql, (tx) => tx`update targets set enabled = false where id = ${target!.id}`);
    const disabled = await unaryCall<{ version: string; unchanged: boolean; targets: unknown[] }>(
      c,
      "GetAssignments",
      { known_version: a.version },
    );
    expect(disabled.unchanged).toBe(false);
    expect(disabled.targets).toEqual([]);
    expect(disabled.version).not.toBe(a.version);
    await withAdmin(h.sql, (tx) => tx`update targets set enabled = true where id = ${target!.id}`);
    const s = openStream(c, "SendResults");
    const raw = encodePayload("scans", {
      results: [
        { time_unix_ms: Date.now(), target_id: target!.id, test_type: "http", success: true, latency_ms: 12 },
      ],
    });
    s.send(batch("scan-1", raw, "zstd"));
    expect((await s.next()).code).toBe(0);
    s.end();
    const [m] = await telemetryMessages(h.nc, `secumon.scans.${tenant}.${probe.id}`, 1);
    expect(m!.headers["Secumon-Source-Type"]).toBe("probe");
    // an agent certificate cannot use the ProbeService
    const wrong = track(makeClient("ProbeService", h.address, h.gw.caPem, { identity: agent }));
    expect((await refusal(unaryCall(wrong, "GetAssignments", {}))).code).toBe(status.PERMISSION_DENIED);
  });
});

describe("identity", () => {
  test("no client certificate: UNAUTHENTICATED", async () => {
    const anon = track(makeClient("AgentService", h.address, h.gw.caPem));
    const e = await refusal(unaryCall(anon, "SendInventory", batch("anon", metrics())));
    expect(e.code).toBe(status.UNAUTHENTICATED);
    const s = openStream(anon, "SendMetrics");
    s.send(batch("anon-2", metrics()));
    expect((await s.closed).code).toBe(status.UNAUTHENTICATED);
  });

  test("a certificate from another CA naming another tenant's agent is UNAUTHENTICATED; nothing is written", async () => {
    const other = await createTenant(h.sql);
    const victim = await enrollAgent(other);
    const forged = await foreignIdentity(victim);
    const c = track(identityClient(forged, h.address));
    const e = await refusal(
      unaryCall(c, "SendInventory", batch("forged", encodePayload("inventory", { time_unix_ms: 1 }))),
    );
    expect(e.code).toBe(status.UNAUTHENTICATED);
    expect(await countMessages(h.nc, `secumon.*.${other}.>`)).toBe(0);
    // nor in the database: the victim was not even seen
    expect(await agentPresence(h.sql, victim.id)).toEqual({ status: "pending", last_seen: null });
  });

  test("the subject's tenant always comes from the certificate (a batch cannot name another tenant)", async () => {
    // TelemetryBatch has no tenant or source field: whatever the agent puts in the payload, the subject is
    // built from its certificate. Verified on the message stored for this agent.
    const other = await createTenant(h.sql);
    const ack = await unaryCall<{ code: number }>(
      client,
      "SendInventory",
      batch(
        `inv-${other.slice(0, 8)}`,
        encodePayload("inventory", { time_unix_ms: 1, os: { hostname: other } }),
      ),
    );
    expect(ack.code).toBe(0);
    const msgs = await telemetryMessages(h.nc, `secumon.inventory.${tenant}.${agent.id}`, 1);
    expect(msgs[0]!.subject.split(".")[2]).toBe(tenant);
    expect(await countMessages(h.nc, `secumon.*.${other}.>`)).toBe(0);
  });

  test("revoking an agent closes its open stream at once and refuses its next call", async () => {
    const id = await enrollAgent();
    const c = track(identityClient(id, h.address));
    const s = openStream(c, "SendMetrics");
    s.send(batch("before-revoke", metrics()));
    expect((await s.next()).code).toBe(0);
    await withAdmin(h.sql, (tx) => tx`update agents set status = 'revoked' where id = ${id.id}`);
    const closed = await s.closed;
    expect(closed.code).toBe(status.PERMISSION_DENIED);
    expect(closed.details).toMatch(/revoked/);
    const e = await refusal(
      unaryCall(c, "SendInventory", batch("after-revoke", encodePayload("inventory", { time_unix_ms: 1 }))),
    );
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(await countMessages(h.nc, `secumon.*.${tenant}.${id.id}`)).toBe(1);
  });

  test("deleting an agent closes its Connect stream and refuses it afterwards", async () => {
    const id = await enrollAgent();
    const c = track(identityClient(id, h.address));
    const call = (
      c as unknown as Record<
        string,
        () => import("@grpc/grpc-js").ClientDuplexStream<object, Record<string, unknown>>
      >
    ).Connect!.call(c);
    const first = new Promise<Record<string, unknown>>((r) => call.once("data", r));
    const closed = new Promise<{ code: number }>((r) => call.on("error", (e: { code: number }) => r(e)));
    call.write({ heartbeat: { sent_unix_ms: Date.now() } });
    expect((await first).config).toBeTruthy(); // the agent's configuration is pushed on connect
    await withAdmin(h.sql, (tx) => tx`delete from agents where id = ${id.id}`);
    expect((await closed).code).toBe(status.PERMISSION_DENIED);
    const e = await refusal(
      unaryCall(c, "SendInventory", batch("after-delete", encodePayload("inventory", { time_unix_ms: 1 }))),
    );
    expect(e.code).toBe(status.PERMISSION_DENIED);
  });
});

describe("Connect (control channel)", () => {
  test("heartbeats are answered; the configuration is pushed on connect and again when an administrator changes it", async () => {
    const id = await enrollAgent();
    const c = track(identityClient(id, h.address));
    const conn = openStream(c, "Connect");
    const next = () => conn.next() as unknown as Promise<Record<string, Record<string, unknown> | undefined>>;
    expect((await next()).config).toEqual({ config_json: "{}" });
    const sent = Date.now();
    conn.send({ heartbeat: { sent_unix_ms: sent, queued_batches: 3, version: "1.0" } });
    expect(Number((await next()).heartbeat_ack?.server_unix_ms)).toBeGreaterThanOrEqual(sent - 60_000);
    // an administrator changes the configuration (what PATCH /api/v1/agents/:id does)
    await withAdmin(
      h.sql,
      (tx) => tx`update agents set config = ${tx.json({ interval_seconds: 15 })} where id = ${id.id}`,
    );
    expect(JSON.parse(String((await next()).config?.config_json))).toEqual({ interval_seconds: 15 });
    // another agent's change is not sent here: the next message is this agent's own next change
    const other = await enrollAgent();
    await withAdmin(
      h.sql,
      (tx) => tx`update agents set config = ${tx.json({ other: true })} where id = ${other.id}`,
    );
    await withAdmin(
      h.sql,
      (tx) => tx`update agents set config = ${tx.json({ interval_seconds: 30 })} where id = ${id.id}`,
    );
    expect(JSON.parse(String((await next()).config?.config_json))).toEqual({ interval_seconds: 30 });
    conn.send({ heartbeat: { sent_unix_ms: Date.now() } });
    expect((await next()).heartbeat_ack).toBeTruthy();
    conn.end();
    expect((await conn.closed).code).toBe(status.OK);
  });

  test("a message that is not an AgentMessage ends Connect with INVALID_ARGUMENT, counted", async () => {
    const before = metric("secumon_gateway_refused_calls_total", 'reason="malformed_request"');
    const id = await enrollAgent();
    const c = track(identityClient(id, h.address));
    const call = c.makeBidiStreamRequest(
      "/secumon.v1.AgentService/Connect",
      (b: Buffer) => b,
      (b: Buffer) => b,
      new Metadata(),
    );
    const closed = new Promise<{ code: number; details: string }>((r) =>
      call.on("error", (e: { code: number; details: string }) => r(e)),
    );
    call.on("data", () => {});
    call.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    const e = await closed;
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toMatch(/malformed AgentMessage.*reconnect/);
    // docs/protocol.md: refused_calls_total{reason="malformed_request"}, as on every other call
    expect(metric("secumon_gateway_refused_calls_total", 'reason="malformed_request"')).toBe(before + 1);
  });
});

describe("presence", () => {
  test("an agent that sends becomes online in the database and an event is published", async () => {
    const id = await enrollAgent();
    const c = track(identityClient(id, h.address));
    await unaryCall(c, "SendInventory", batch("presence-1", encodePayload("inventory", { time_unix_ms: 1 })));
    const row = await waitFor(
      async () => {
        const r = await agentPresence(h.sql, id.id);
        return r?.status === "online" ? r : undefined;
      },
      10_000,
      "the agent to be marked online",
    );
    expect(row.last_seen).toBeInstanceOf(Date);
    const js = jetstream(h.nc);
    const consumer = await js.consumers.get("EVENTS", {
      filter_subjects: [`secumon.events.agent.${tenant}.${id.id}`],
    });
    const m = await consumer.next({ expires: 5000 });
    expect(m?.json<{ status: string; previous: string }>()).toMatchObject({
      status: "online",
      previous: "pending",
    });
  });
});
