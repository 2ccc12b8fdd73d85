/**
 * The wgmanager where the tunnel cannot or must not run, and its HTTP routes' error paths: WireGuard off in
 * the config, a process without CAP_NET_ADMIN (a real one, via setpriv), refused callers, bad requests.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Elysia } from "elysia";
import type { Sql } from "postgres";
import { CollectorError } from "../../src/lib/errors.ts";
import { wireguardRoutes } from "../../src/wireguard/http.ts";
import { createWgManager, type WgManager } from "../../src/wireguard/manager.ts";
import { migratedSql } from "../support/pg.ts";
import { wgContext } from "./harness.ts";

let sql: Sql;
let url: string;
let manager: WgManager;
let ctx: ReturnType<typeof wgContext>;

beforeAll(async () => {
  ({ sql, url } = await migratedSql());
  ctx = wgContext(sql, { enabled: false });
  manager = createWgManager(ctx);
  await manager.start();
}, 60_000);

// the api role's error envelope, as the collector's HTTP server maps CollectorError
const app = (authorize?: Parameters<typeof wireguardRoutes>[1]) =>
  new Elysia()
    .onError(({ error, set }) => {
      if (error instanceof CollectorError) {
        set.status = error.status;
        return { status: "error", errorType: error.code, error: error.message };
      }
    })
    .use(wireguardRoutes(manager, authorize));

const call = async (a: ReturnType<typeof app>, method: string, path: string, body?: unknown) => {
  const res = await a.handle(
    new Request(`http://collector${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    }),
  );
  return { status: res.status, text: await res.text() };
};

describe("WireGuard switched off", () => {
  test("wireguard.enabled false: ready, up 0, live routes answer 503 with the reason", async () => {
    expect(manager.disabledReason).toBe("WireGuard is disabled (wireguard.enabled: false)");
    expect(manager.readiness?.()).toBeNull();
    expect(ctx.metrics.render()).toMatch(/^secumon_wireguard_up 0$/m);
    const open = app(() => {});
    for (const [method, path] of [
      ["GET", "/api/v1/wireguard/peers"],
      ["GET", `/api/v1/wireguard/peers/agent/${crypto.randomUUID()}`],
      ["POST", "/api/v1/wireguard/rotate"],
    ] as const) {
      const r = await call(open, method, path);
      expect({ path, status: r.status }).toEqual({ path, status: 503 });
      expect(r.text).toContain("wireguard.enabled: false");
    }
    const server = await call(open, "GET", "/api/v1/wireguard/server");
    expect(server.status).toBe(404);
    expect(server.text).toContain("WireGuard is disabled");
  });

  test("without CAP_NET_ADMIN the role says so once, stays ready and reports up 0", async () => {
    const proc = Bun.spawn(
      [
        "setpriv",
        "--bounding-set=-net_admin",
        "--inh-caps=-net_admin",
        "--",
        process.execPath,
        join(import.meta.dir, "fixtures/nocap.ts"),
      ],
      { env: { ...process.env, WG_TEST_DB: url }, stdout: "pipe", stderr: "pipe" },
    );
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    expect({ code, err: code === 0 ? "" : err }).toEqual({ code: 0, err: "" });
    const r = JSON.parse(out.trim().split("\n").at(-1) as string);
    expect(r.readiness).toBeNull();
    expect(r.up).toBe("0");
    expect(r.disabledReason).toContain("lacks CAP_NET_ADMIN");
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toContain("WireGuard tunnel disabled: the process lacks CAP_NET_ADMIN; grant it");
    expect(r.warnings[0]).toContain("Everything else keeps running");
  }, 30_000);
});

describe("WireGuard HTTP routes: refusals and bad requests", () => {
  test("the default guard admits loopback clients only", async () => {
    const r = await call(app(), "GET", "/api/v1/wireguard/server"); // no socket: no client address
    expect(r.status).toBe(403);
    expect(r.text).toContain("answers local clients only");
    const server = app().listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const res = await fetch(`http://127.0.0.1:${server.server?.port}/api/v1/wireguard/server`);
      expect(res.status).toBe(404); // admitted: WireGuard is off here, hence 404
    } finally {
      await server.stop();
    }
  });

  test("malformed kinds and ids are 400, unknown peers 404, and a peer config before set-up 409", async () => {
    const open = app(() => {});
    const bad = await call(open, "GET", `/api/v1/wireguard/peers/host/${crypto.randomUUID()}/config`);
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('peer kind must be \\"agent\\" or \\"probe\\"');
    expect((await call(open, "GET", "/api/v1/wireguard/peers/agent/42/config")).status).toBe(400);
    await sql`delete from wireguard_server`;
    const early = await call(open, "GET", `/api/v1/wireguard/peers/agent/${crypto.randomUUID()}/config`);
    expect(early.status).toBe(409);
    expect(early.text).toContain("WireGuard has not been set up yet");
    await manager.store.ensureServer({
      interface: "wg-secumon",
      endpoint: "",
      listenPort: 51820,
      address: "10.200.0.1/16",
      pool: "10.200.0.0/16",
      allowedIps: ["10.200.0.1/32"],
      persistentKeepalive: 25,
    });
    const unknown = await call(open, "GET", `/api/v1/wireguard/peers/agent/${crypto.randomUUID()}/config`);
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain("must enroll with a WireGuard public key first");
  });

  test("the server view says why the tunnel is down and never exposes a private key", async () => {
    const r = await call(
      app(() => {}),
      "GET",
      "/api/v1/wireguard/server",
    );
    expect(r.status).toBe(200); // the row written above
    const body = JSON.parse(r.text);
    expect(body).toMatchObject({ up: false, reason: "WireGuard is disabled (wireguard.enabled: false)" });
    expect(body.public_key).toHaveLength(44);
    expect(r.text).not.toMatch(/private/i);
  });
});
