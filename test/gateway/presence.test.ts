/**
 * Presence across two gateway instances sharing one PostgreSQL, one nats-server and one real redis-server
 * (`redis.url`): an agent streaming through gateway A while gateway B serves its unary calls stays online
 * without flapping; it goes offline once (one event) when its stream closes; an unreachable Redis at start is a
 * clear error naming redis.url. A gateway that stops: presence-stop.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Client } from "@grpc/grpc-js";
import { encodePayload } from "../../src/protocol/index.ts";
import { enroll, type Identity, identityClient, unaryCall } from "../../src/simulator/client.ts";
import { withAdmin } from "../../src/storage/db.ts";
import { freePort } from "../../src/supervisor/ports.ts";
import { waitFor } from "../support/collector.ts";
import { createTenant, createToken, type Harness, startGateway } from "./harness.ts";
import { agentEvents, openStream } from "./helpers.ts";
import { startRedis, type TestRedis } from "./redis.ts";

const OFFLINE_MS = 2000;
const presenceConfig = { offline_after: "2s", last_seen_write_interval: "1s" };
let redis: TestRedis | null = null;
let url = "";
let a: Harness;
let b: Harness;
let tenant: string;
const clients: Client[] = [];

beforeAll(async () => {
  redis = await startRedis();
  url = redis.url;
  a = await startGateway(presenceConfig, { redis: { url } });
  b = await startGateway(presenceConfig, { redis: { url } }, { sql: a.sql });
  tenant = await createTenant(a.sql);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await a?.stop();
  await b?.stop();
  await redis?.stop();
});

async function agentStatus(id: string): Promise<string | undefined> {
  const [r] = await withAdmin(
    a.sql,
    (tx) => tx<{ status: string }[]>`select status from agents where id = ${id}`,
  );
  return r?.status;
}

async function waitStatus(id: string, status: string): Promise<void> {
  await waitFor(
    async () => ((await agentStatus(id)) === status ? true : undefined),
    20_000,
    `agent ${id} to be ${status}`,
  );
}

/** Every status event published for one agent, in order. */
const events = (h: Harness, id: string) => agentEvents(h.nc, tenant, id);

const inventory = (id: string) => {
  const raw = encodePayload("inventory", { time_unix_ms: Date.now() });
  return { batch_id: id, compression: 0, uncompressed_size: raw.byteLength, payload: raw };
};

async function enrollAgent(h: Harness): Promise<Identity> {
  return enroll({ address: h.address, caPem: h.gw.caPem, token: await createToken(h.sql, tenant) });
}

describe("presence shared through Redis", () => {
  test("streaming through A while B serves unary calls: online without flapping, offline once after the stream closes", async () => {
    const id = await enrollAgent(a);
    const ca = identityClient(id, a.address);
    const cb = identityClient(id, b.address);
    clients.push(ca, cb);
    const conn = openStream(ca, "Connect");
    conn.send({ heartbeat: { sent_unix_ms: Date.now() } });
    await unaryCall(cb, "SendInventory", inventory("shared-1"));
    await waitStatus(id.id, "online");
    // B saw the agent once; alone it would mark it offline after offline_after while A still holds its stream
    await Bun.sleep(3 * OFFLINE_MS);
    expect(await agentStatus(id.id)).toBe("online");
    conn.end();
    await waitStatus(id.id, "offline");
    expect(await events(a, id.id)).toEqual(["online", "offline"]);
  }, 40_000);

  test("an unreachable Redis at start is a clear error naming redis.url", async () => {
    const dead = `redis://127.0.0.1:${freePort()}`;
    const err = await startGateway(presenceConfig, { redis: { url: dead } }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/redis\.url/);
    expect(err?.message).toMatch(/check that it is running/);
  });
});
