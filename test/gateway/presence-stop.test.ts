/**
 * A gateway that stops cleanly, with presence shared through a real redis-server (`redis.url`): the agents
 * whose streams it held are offline at once (not offline_after later through another instance), written and
 * announced by that gateway alone (one event); an agent another instance saw within offline_after stays online.
 * offline_after is 30 s here, so an offline seen right after the stop can only come from the stopping gateway.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Client } from "@grpc/grpc-js";
import Redis from "ioredis";
import { encodePayload } from "../../src/protocol/index.ts";
import { enroll, type Identity, identityClient, unaryCall } from "../../src/simulator/client.ts";
import { withAdmin } from "../../src/storage/db.ts";
import { waitFor } from "../support/collector.ts";
import { createTenant, createToken, type Harness, startGateway } from "./harness.ts";
import { agentEvents, openStream } from "./helpers.ts";
import { startRedis, type TestRedis } from "./redis.ts";

const config = { offline_after: "30s", last_seen_write_interval: "1s" };
let redis: TestRedis;
let r: Redis;
let d: Harness; // the instance that keeps running
let tenant: string;
const clients: Client[] = [];

beforeAll(async () => {
  redis = await startRedis();
  r = new Redis(redis.url);
  d = await startGateway(config, { redis: { url: redis.url } });
  tenant = await createTenant(d.sql);
});

afterAll(async () => {
  for (const c of clients) c.close();
  r?.disconnect();
  await d?.stop();
  await redis?.stop();
});

const startOther = () => startGateway(config, { redis: { url: redis.url } }, { sql: d.sql });

async function agentStatus(id: string): Promise<string | undefined> {
  const [row] = await withAdmin(
    d.sql,
    (tx) => tx<{ status: string }[]>`select status from agents where id = ${id}`,
  );
  return row?.status;
}

/** Every status event published for one agent, in order. */
const events = (id: string) => agentEvents(d.nc, tenant, id);

/** Enrolls through `h` and holds a Connect stream open on it until the gateway closes it. */
async function streamingAgent(h: Harness): Promise<Identity> {
  const id = await enroll({ address: h.address, caPem: h.gw.caPem, token: await createToken(h.sql, tenant) });
  const client = identityClient(id, h.address);
  clients.push(client);
  openStream(client, "Connect").send({ heartbeat: { sent_unix_ms: Date.now() } });
  await waitFor(
    async () => ((await agentStatus(id.id)) === "online" ? true : undefined),
    20_000,
    `agent ${id.id} to be online`,
  );
  return id;
}

const member = (id: Identity) => `agent:${id.id}:${id.tenantId}`;

describe("a gateway that stops cleanly (shared presence)", () => {
  test("marks offline at once the agents whose streams it held, with one event", async () => {
    const c = await startOther();
    const id = await streamingAgent(c);
    expect(await r.zscore("secumon:presence", member(id))).not.toBeNull();
    await c.stop();
    expect(await agentStatus(id.id)).toBe("offline");
    expect(await r.zscore("secumon:presence", member(id))).toBeNull();
    expect(await events(id.id)).toEqual(["online", "offline"]);
  }, 40_000);

  test("leaves online an agent another instance saw within offline_after", async () => {
    const c = await startOther();
    const id = await streamingAgent(c);
    // the running instance serves one unary call of the same agent
    const other = identityClient(id, d.address);
    clients.push(other);
    const raw = encodePayload("inventory", { time_unix_ms: Date.now() });
    const seenByD = Date.now();
    await unaryCall(other, "SendInventory", {
      batch_id: "stop-seen-elsewhere",
      compression: 0,
      uncompressed_size: raw.byteLength,
      payload: raw,
    });
    await Bun.sleep(1500); // d's next presence tick records it in Redis
    await c.stop();
    expect(await agentStatus(id.id)).toBe("online");
    // its last-seen is now what d saw (the stopping gateway's own sightings were taken back)
    const score = Number(await r.zscore("secumon:presence", member(id)));
    expect(score).toBeGreaterThanOrEqual(seenByD);
    expect(score).toBeLessThan(Date.now() - 1000);
    expect(await events(id.id)).toEqual(["online"]);
  }, 40_000);
});
