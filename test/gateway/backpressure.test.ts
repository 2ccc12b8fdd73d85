/**
 * Back-pressure: a gateway in front of a nats-server of the test's own whose TELEMETRY stream holds only a few
 * batches (max_bytes, discard new). The batch that does not fit is answered RESOURCE_EXHAUSTED with a retry hint
 * (on a stream and on a unary call), nothing acknowledged is missing from the stream and nothing refused is in
 * it, and once the stream drains the agent's resend of the same batch is accepted.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Client, status } from "@grpc/grpc-js";
import { JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import { publishError } from "../../src/gateway/intake.ts";
import { encodePayload } from "../../src/protocol/index.ts";
import { identityClient, unaryCall } from "../../src/simulator/client.ts";
import { makePayload, simHost } from "../../src/simulator/data.ts";
import { type PrivateNats, privateNats } from "../support/nats.ts";
import { createTenant, enrollAgent, type Harness, startGateway, telemetryMessages } from "./harness.ts";
import { openStream, refusal } from "./helpers.ts";

const MAX_BYTES = 64 * 1024;

let nats: PrivateNats;
let h: Harness;
let tenant: string;
const clients: Client[] = [];

beforeAll(async () => {
  nats = await privateNats();
  h = await startGateway(
    { rate_limiting: { enabled: false } },
    {},
    { natsUrl: nats.url, streamMaxBytes: MAX_BYTES },
  );
  tenant = await createTenant(h.sql);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await h?.stop();
  await nats?.child.stop();
});

describe("back-pressure when the TELEMETRY stream is full", () => {
  test("the batch that does not fit is RESOURCE_EXHAUSTED, nothing is lost, the resend succeeds after a drain", async () => {
    const id = await enrollAgent(h, tenant);
    const c = identityClient(id, h.address);
    clients.push(c);
    const host = simHost(1);
    // uncompressed metrics batches of ~10 KiB: the stream holds a handful
    const batch = (i: number) => {
      const { bytes } = makePayload("metrics", host, 100);
      return { batch_id: `bp-${i}`, compression: 0, uncompressed_size: bytes.byteLength, payload: bytes };
    };
    const s = openStream(c, "SendMetrics");
    const acked: string[] = [];
    let refused: { batch: ReturnType<typeof batch>; retryAfter: number; message: string } | null = null;
    for (let i = 0; i < 100 && !refused; i++) {
      const b = batch(i);
      s.send(b);
      const ack = await s.next();
      expect(ack.batch_id).toBe(b.batch_id);
      if (ack.code === 0) acked.push(b.batch_id);
      else {
        expect(ack.code).toBe(status.RESOURCE_EXHAUSTED);
        refused = { batch: b, retryAfter: ack.retry_after_ms, message: ack.message };
      }
    }
    expect(refused).not.toBeNull();
    const r = refused as NonNullable<typeof refused>;
    expect(r.retryAfter).toBeGreaterThan(0);
    expect(r.message).toContain("buffer is full");
    expect(acked.length).toBeGreaterThan(1);

    // the stream stays open and the resend is refused the same way while the stream is full; so is a unary
    // call — never UNAVAILABLE or INTERNAL
    s.send(r.batch);
    expect((await s.next()).code).toBe(status.RESOURCE_EXHAUSTED);
    const inv = makePayload("inventory", host, 500).bytes; // ~15 KiB: more than the space left
    const e = await refusal(
      unaryCall(c, "SendInventory", {
        batch_id: "bp-inventory",
        compression: 0,
        uncompressed_size: inv.byteLength,
        payload: inv,
      }),
    );
    expect(e.code).toBe(status.RESOURCE_EXHAUSTED);

    // exactly the acknowledged batches are stored
    const subject = `secumon.metrics.${tenant}.${id.id}`;
    const jsm = await jetstreamManager(h.nc);
    const info = await jsm.streams.info("TELEMETRY");
    expect(info.state.bytes).toBeLessThanOrEqual(MAX_BYTES);
    const stored = await telemetryMessages(h.nc, subject, acked.length);
    expect(stored.map((m) => m.headers["Secumon-Batch-Id"]).sort()).toEqual([...acked].sort());
    expect(h.metrics.render()).toMatch(/reason="stream_full"/);

    // storage catches up (the stream drains) → the agent's resend of the same batch is accepted
    await jsm.streams.purge("TELEMETRY");
    s.send(r.batch);
    const again = await s.next();
    expect(again).toMatchObject({ batch_id: r.batch.batch_id, code: 0 });
    s.end();
    const raw = encodePayload("inventory", { time_unix_ms: Date.now() });
    const small = { batch_id: "bp-small", compression: 0, uncompressed_size: raw.byteLength, payload: raw };
    expect(await unaryCall(c, "SendInventory", small)).toMatchObject({ code: 0 });
    const after = await telemetryMessages(h.nc, `secumon.*.${tenant}.${id.id}`, 2);
    expect(after.map((m) => m.headers["Secumon-Batch-Id"]).sort()).toEqual([r.batch.batch_id, "bp-small"]);
  }, 30_000);
});

describe("publish error mapping (JetStream API error codes, not free text)", () => {
  const api = (err_code: number, description: string, code = 503) =>
    new JetStreamApiError({ code, err_code, description });
  test.each([
    ["stream max_bytes (discard new)", api(10077, "maximum bytes exceeded"), status.RESOURCE_EXHAUSTED],
    ["stream max_msgs (discard new)", api(10077, "maximum messages exceeded"), status.RESOURCE_EXHAUSTED],
    ["per-subject limit", api(10077, "maximum messages per subject exceeded"), status.RESOURCE_EXHAUSTED],
    [
      "server storage exhausted",
      api(10047, "insufficient storage resources available", 500),
      status.RESOURCE_EXHAUSTED,
    ],
    ["account limits", api(10002, "resource limits exceeded for account", 400), status.RESOURCE_EXHAUSTED],
    ["store I/O failure", api(10077, "write /data/x: input/output error"), status.UNAVAILABLE],
    ["message too large", api(10054, "message size exceeds maximum allowed", 400), status.INVALID_ARGUMENT],
    ["a plain error mentioning resources", new Error("resource temporarily unavailable"), status.UNAVAILABLE],
    ["timeout", new Error("TIMEOUT"), status.UNAVAILABLE],
  ])("%s", (_name, err, code) => {
    const g = publishError(err);
    expect(g.code).toBe(code);
    expect(g.details).toMatch(/resend|split/);
  });
});
