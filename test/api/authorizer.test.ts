/**
 * src/api/authorizer.ts, what the wgmanager's routes authenticate with, on a real redis-server (`redis.url`):
 * Redis down at the first request is not remembered for ever, and close never leaves a connection behind.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import Redis from "ioredis";
import { roleAuthorizer } from "../../src/api/authorizer.ts";
import type { RoleContext } from "../../src/app/role.ts";
import { freePort } from "../../src/supervisor/ports.ts";
import { waitFor } from "../support/collector.ts";
import { migratedSql } from "../support/pg.ts";
import { handBuiltContext } from "./role-context.ts";

const port = freePort();
let redis: ReturnType<typeof Bun.spawn> | null = null;
let ctx: RoleContext;

beforeAll(async () => {
  ctx = handBuiltContext((await migratedSql()).sql, { redis: { url: `redis://127.0.0.1:${port}` } });
});

afterAll(async () => {
  redis?.kill();
  await redis?.exited;
});

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e: { code?: string }) => e.code,
  );

test("Redis down at the first request, up at a later one: the later one is authenticated, not refused with the old error", async () => {
  const auth = roleAuthorizer(ctx, "superadmin");
  const unsigned = new Request("http://localhost/api/v1/wireguard/peers");
  expect(await codeOf(auth.authorize(unsigned))).toBe("DEPENDENCY_MISSING"); // nothing listens yet
  redis = Bun.spawn(
    ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdout: "ignore", stderr: "ignore" },
  );
  // the same request once Redis answers: now a missing token is what is wrong
  const code = await waitFor(
    async () => {
      const c = await codeOf(auth.authorize(unsigned));
      return c === "DEPENDENCY_MISSING" ? undefined : c;
    },
    10_000,
    "the authorizer to reach the new redis-server",
  );
  expect(code).toBe("UNAUTHENTICATED");

  // close while a store is still being opened: it is closed too, no client is left on the server
  const other = roleAuthorizer(ctx, "superadmin");
  const inFlight = codeOf(other.authorize(unsigned));
  await other.close();
  expect(await inFlight).toBe("UNAUTHENTICATED");
  await auth.close();
  const admin = new Redis(`redis://127.0.0.1:${port}`);
  try {
    await waitFor(
      async () => {
        const list = String(await admin.call("CLIENT", "LIST"));
        return list.trim().split("\n").length === 1 || undefined; // only this one
      },
      10_000,
      "the authorizers' Redis connections to be closed",
    );
  } finally {
    admin.disconnect();
  }
});
