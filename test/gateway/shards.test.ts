/**
 * TELEMETRY shards (src/bus/telemetry.ts): a gateway publishing to 4 streams on a nats-server of the test's own.
 * Each source's batches land in the stream of its shard only, stored under `secumon.<kind>.<tenant>.<source>`
 * with the usual headers, counted by that stream's durable `ingest-<kind>` consumer; a resent batch is a
 * duplicate in its shard (acknowledged, stored once).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Client } from "@grpc/grpc-js";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  ingestConsumerName,
  TELEMETRY_STREAM,
  telemetryShard,
  telemetryStreamName,
  telemetryStreams,
} from "../../src/bus/telemetry.ts";
import { encodePayload } from "../../src/protocol/index.ts";
import { enroll, type Identity, identityClient } from "../../src/simulator/client.ts";
import { type PrivateNats, privateNats } from "../support/nats.ts";
import {
  countMessages,
  createTenant,
  createToken,
  type Harness,
  startGateway,
  telemetryMessages,
} from "./harness.ts";
import { openStream } from "./helpers.ts";

const SHARDS = 4;
let nats: PrivateNats;
let h: Harness;
let tenant: string;
const clients: Client[] = [];

beforeAll(async () => {
  nats = await privateNats();
  h = await startGateway({ rate_limiting: { enabled: false } }, {}, { natsUrl: nats.url, shards: SHARDS });
  tenant = await createTenant(h.sql);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await h?.stop();
  await nats?.child.stop();
});

const metrics = (id: string) => {
  const raw = encodePayload("metrics", { system: [{ time_unix_ms: Date.now(), cpu_usage: 1 }] });
  return { batch_id: id, compression: 0, uncompressed_size: raw.byteLength, payload: raw };
};

describe("TELEMETRY shards", () => {
  test("the shard helpers: shard 0 is TELEMETRY, a source always maps to the same shard", () => {
    expect(telemetryStreams(SHARDS)).toEqual(["TELEMETRY", "TELEMETRY_1", "TELEMETRY_2", "TELEMETRY_3"]);
    expect(telemetryStreams()).toEqual([TELEMETRY_STREAM]);
    const id = crypto.randomUUID();
    expect(telemetryShard(id, SHARDS)).toBe(telemetryShard(id, SHARDS));
    expect(telemetryShard(id, 1)).toBe(0);
  });

  test("each source's batches are in its shard's stream only, under the usual subject and headers; a resend is a duplicate", async () => {
    const agents: Identity[] = [];
    const shardsUsed = new Set<number>();
    // enough agents to cover at least two shards (ids are random)
    while (agents.length < 6 || (shardsUsed.size < 2 && agents.length < 40)) {
      const id = await enroll({
        address: h.address,
        caPem: h.gw.caPem,
        token: await createToken(h.sql, tenant),
      });
      agents.push(id);
      shardsUsed.add(telemetryShard(id.id, SHARDS));
    }
    expect(shardsUsed.size).toBeGreaterThanOrEqual(2);
    for (const id of agents) {
      const c = identityClient(id, h.address);
      clients.push(c);
      const s = openStream(c, "SendMetrics");
      for (const b of ["s-1", "s-2", "s-1"]) {
        s.send(metrics(b));
        expect((await s.next()).code).toBe(0); // the resent s-1 too: it is stored, once
      }
      s.end();
      const mine = telemetryStreamName(telemetryShard(id.id, SHARDS));
      const subject = `secumon.metrics.${tenant}.${id.id}`;
      for (const stream of telemetryStreams(SHARDS)) {
        expect(await countMessages(h.nc, subject, stream)).toBe(stream === mine ? 2 : 0);
      }
      const msgs = await telemetryMessages(h.nc, subject, 2, 10_000, mine);
      expect(msgs.map((m) => m.subject)).toEqual([subject, subject]);
      expect(msgs[0]!.headers["Nats-Msg-Id"]).toBe(`${id.id}:s-1`);
      expect(msgs[0]!.headers["Secumon-Tenant"]).toBe(tenant);
      expect(msgs[0]!.headers["Secumon-Source"]).toBe(id.id);
    }
    // the ingestion's durable consumer of each shard sees its messages under the stored subject
    const jsm = await jetstreamManager(h.nc);
    let pending = 0;
    for (const stream of telemetryStreams(SHARDS)) {
      pending += (await jsm.consumers.info(stream, ingestConsumerName("metrics"))).num_pending;
    }
    expect(pending).toBe(agents.length * 2);
  });
});
