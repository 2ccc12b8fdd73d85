/**
 * The wgmanager with real parts, in network namespaces this test creates (test/wireguard/lab.ts): the
 * collector's wireguard-go in one, a device's wireguard-go in another configured from the wg-quick file the
 * collector exported; ping and TCP round trips across the tunnel (iputils-ping is installed by setup; the TCP
 * echo is the same proof that packets cross the tunnel in both directions). Revocation stops the traffic; a
 * restart restores every peer from the database (1,000 of them, apply time logged); a crashed wireguard-go is
 * reconfigured; staleness events reach NATS; a key rotation switches keys after its grace.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Sql } from "postgres";
import { executable } from "../../src/assets/binaries.ts";
import { withAdmin } from "../../src/storage/db.ts";
import { wireguardRoutes } from "../../src/wireguard/http.ts";
import { generateKeyPair } from "../../src/wireguard/keys.ts";
import { createWgManager, type WgManager } from "../../src/wireguard/manager.ts";
import { Uapi } from "../../src/wireguard/uapi.ts";
import { testNats } from "../support/nats.ts";
import { migratedSql } from "../support/pg.ts";
import { Clock, enrollAgent, newTenant, waitFor, wgContext } from "./harness.ts";
import { COLLECTOR_VETH_IP, type Device, Lab, labUnavailable } from "./lab.ts";

const unavailable = labUnavailable();
if (unavailable) console.warn(`[wireguard netns tests skipped] ${unavailable}`);

describe.skipIf(unavailable !== null)("WireGuard in network namespaces", () => {
  const lab = new Lab();
  const clock = new Clock();
  const ECHO_PORT = 7777;
  let sql: Sql;
  let nc: NatsConnection;
  let binary: string;
  let tenant: string;
  let manager: WgManager;
  let device: Device;
  const deviceKeys = generateKeyPair();
  let agent: { id: string; ip: string };
  let deviceConf = "";
  /**
   * After the collector's interface restarts, a real device notices within ~15 s (WireGuard's keepalive and
   * rekey timeouts) and handshakes again; re-applying its config makes it handshake at once and keeps the
   * test short.
   */
  const rehandshake = () => device.apply(deviceConf, deviceKeys.privateKey);
  const wgConfig = {
    interface: "wg-secumon",
    endpoint: COLLECTOR_VETH_IP,
    listen_port: 51820,
    address: "10.200.0.1/16",
    pool: "10.200.0.0/16",
    handshake_stale_after: "5m",
    key_rotation_grace: "1h",
  };
  let ctx: ReturnType<typeof wgContext>;
  let host: Awaited<ReturnType<Lab["collectorHost"]>>;

  const routes = () => wireguardRoutes(manager, () => {});
  const get = (path: string) => routes().handle(new Request(`http://collector${path}`));

  function newManager(): WgManager {
    // a restarted collector: new process state, same database and master key
    ctx = wgContext(sql, wgConfig, { nats: nc, ...(ctx ? { keyring: ctx.keyring } : {}) });
    return createWgManager(ctx, { host, clock: clock.now, binary });
  }

  beforeAll(async () => {
    ({ sql } = await migratedSql());
    nc = await connect({ servers: await testNats() });
    binary = await executable("wireguard-go", "/tmp");
    await lab.up();
    host = await lab.collectorHost();
    tenant = await newTenant(sql, "wg-lab");
    manager = newManager();
    await manager.start();
    await lab.echoServer("10.200.0.1", ECHO_PORT);
  }, 60_000);

  afterAll(async () => {
    await manager?.stop();
    await lab.down();
    await nc?.close();
  }, 30_000);

  test("an enrolled agent gets a peer live and reaches the collector through the tunnel", async () => {
    expect(manager.disabledReason).toBeNull();
    expect(manager.readiness?.()).toBeNull();
    agent = await enrollAgent(sql, tenant, deviceKeys.publicKey);
    await waitFor(
      async () => manager.peers().some((p) => p.id === agent.id),
      5000,
      "the peer to be applied live",
    );

    const res = await get(`/api/v1/wireguard/peers/agent/${agent.id}/config`);
    expect(res.status).toBe(200);
    const conf = await res.text();
    expect(conf).toContain(`Address = ${agent.ip}/32`);
    expect(conf).toContain(`Endpoint = ${COLLECTOR_VETH_IP}:51820`);
    expect(conf).not.toMatch(/PrivateKey = [A-Za-z0-9+/]{43}=/); // never a real private key

    device = await lab.device(binary, conf, deviceKeys.privateKey);
    deviceConf = conf;
    expect(
      await waitFor(() => lab.reach("10.200.0.1", ECHO_PORT), 15_000, "a round trip through the tunnel"),
    ).toBe(true);
    expect(await waitFor(() => lab.ping("10.200.0.1"), 10_000, "ping across the tunnel")).toBe(true);

    await manager.pollStats();
    const peer = manager.peers().find((p) => p.id === agent.id);
    expect(peer?.last_handshake).not.toBeNull();
    expect(peer?.rx_bytes).toBeGreaterThan(0);
    expect(peer?.endpoint).toStartWith("10.250.0.2:");
  }, 60_000);

  test("/metrics carries the interface state and per-peer counters", async () => {
    const text = ctx.metrics.render();
    expect(text).toContain("secumon_wireguard_up 1");
    expect(text).toMatch(
      new RegExp(`secumon_wireguard_peer_receive_bytes_total\\{[^}]*id="${agent.id}"[^}]*\\} [1-9]`),
    );
    expect(text).toMatch(/secumon_wireguard_peer_last_handshake_timestamp_seconds\{[^}]*\} 1\d{9}/);
  });

  test("a peer without a handshake for handshake_stale_after is reported on NATS, and again when it recovers", async () => {
    const sub = nc.subscribe(`secumon.events.wireguard.${tenant}.${agent.id}`, { max: 2 });
    const got: { type: string; stale_for_seconds: number }[] = [];
    const done = (async () => {
      for await (const m of sub) got.push(m.json());
    })();
    clock.offsetMs = 10 * 60_000;
    const events = await manager.pollStats();
    expect(events.map((e) => e.type)).toEqual(["wireguard.handshake_stale"]);
    expect(manager.peers().find((p) => p.id === agent.id)?.stale).toBe(true);
    clock.offsetMs = 0;
    expect((await manager.pollStats()).map((e) => e.type)).toEqual(["wireguard.handshake_recovered"]);
    await Promise.race([done, Bun.sleep(5000)]);
    expect(got.map((g) => g.type)).toEqual(["wireguard.handshake_stale", "wireguard.handshake_recovered"]);
    expect(got[0]?.stale_for_seconds).toBeGreaterThanOrEqual(599);
  });

  test("revoking the agent removes its peer at once and stops the traffic", async () => {
    await withAdmin(sql, (tx) => tx`update agents set status = 'revoked' where id = ${agent.id}`);
    const uapi = new Uapi(host.socketPath("wg-secumon"));
    await waitFor(
      async () => !(await uapi.get()).peers.some((p) => p.publicKey === deviceKeys.publicKey),
      5000,
      "the revoked peer to leave the interface",
    );
    expect(await lab.reach("10.200.0.1", ECHO_PORT, 1500)).toBe(false);
    expect(await lab.ping("10.200.0.1")).toBe(false);
    const res = await get(`/api/v1/wireguard/peers/agent/${agent.id}`);
    expect(res.status).toBe(404);
  }, 30_000);

  test("a restart restores every peer from the database (1,000 provisioned peers)", async () => {
    await manager.stop();
    // provisioned while the interface was down
    const p0 = performance.now();
    await withAdmin(sql, async (tx) => {
      const keys = Array.from({ length: 1000 }, () => generateKeyPair().publicKey);
      await tx`
        with a as (
          insert into agents (tenant_id, name)
          select ${tenant}, 'bulk-' || i from generate_series(1, 1000) i returning id, name)
        select secumon_wg_assign('agent', a.id, k.key)
        from a join unnest(${keys}::text[]) with ordinality k(key, i) on a.name = 'bulk-' || k.i`;
    });
    console.log(
      `[wireguard] provisioning 1000 agents (secumon_wg_assign) took ${Math.round(performance.now() - p0)} ms`,
    );
    manager = newManager();
    const t0 = performance.now();
    await manager.start();
    const ms = performance.now() - t0;
    const uapi = new Uapi(host.socketPath("wg-secumon"));
    const peers = (await uapi.get()).peers;
    console.log(`[wireguard] restart with 1000 peers: start (spawn + configure) took ${Math.round(ms)} ms`);
    expect(peers.length).toBe(1000);
    expect(peers.some((p) => p.publicKey === deviceKeys.publicKey)).toBe(false); // still revoked

    // reinstating the agent brings it back live, through the restarted interface
    await withAdmin(sql, (tx) => tx`update agents set status = 'online' where id = ${agent.id}`);
    await waitFor(async () => manager.peers().some((p) => p.id === agent.id), 5000, "the reinstated peer");
    await rehandshake();
    expect(await waitFor(() => lab.reach("10.200.0.1", ECHO_PORT), 15_000, "traffic after the restart")).toBe(
      true,
    );
  }, 120_000);

  test("a crashed wireguard-go is restarted and reconfigured from the database", async () => {
    const pid = manager.pid as number;
    process.kill(pid, "SIGKILL");
    await waitFor(
      async () => manager.pid !== null && manager.pid !== pid && manager.readiness?.() === null,
      10_000,
      "a new wireguard-go",
    );
    const uapi = new Uapi(host.socketPath("wg-secumon"));
    await waitFor(async () => (await uapi.get()).peers.length === 1001, 10_000, "all peers back");
    await rehandshake();
    expect(await waitFor(() => lab.reach("10.200.0.1", ECHO_PORT), 15_000, "traffic after the crash")).toBe(
      true,
    );
  }, 60_000);

  test("a key rotation announces the new key, keeps the old one during the grace, then switches", async () => {
    const before = (await manager.server())?.publicKey;
    const res = await routes().handle(
      new Request("http://collector/api/v1/wireguard/rotate", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ grace: "1h" }),
      }),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as { public_key: string; next_public_key: string; rotate_at: string };
    expect(body.public_key).toBe(before as string);
    expect(body.next_public_key).toHaveLength(44);
    // a second rotation while one is pending is refused
    const again = await routes().handle(
      new Request("http://collector/api/v1/wireguard/rotate", { method: "POST" }),
    );
    expect(again.status).toBe(409);
    // during the grace the old key still serves
    expect(await lab.reach("10.200.0.1", ECHO_PORT)).toBe(true);
    const conf = await (await get(`/api/v1/wireguard/peers/agent/${agent.id}/config`)).text();
    expect(conf).toContain(`#   PublicKey = ${body.next_public_key}`);

    clock.offsetMs = 2 * 3_600_000;
    await manager.pollStats();
    clock.offsetMs = 0;
    const after = await manager.server();
    expect(after?.publicKey).toBe(body.next_public_key);
    expect(after?.previousPublicKey).toBe(before as string);
    // the device re-fetches its config and reconnects with the new key
    const fresh = await (await get(`/api/v1/wireguard/peers/agent/${agent.id}/config`)).text();
    expect(fresh).toContain(`PublicKey = ${body.next_public_key}`);
    deviceConf = fresh;
    await rehandshake();
    expect(await waitFor(() => lab.reach("10.200.0.1", ECHO_PORT), 15_000, "traffic with the new key")).toBe(
      true,
    );
  }, 60_000);

  test("deleting the agent removes the peer and releases its address", async () => {
    await withAdmin(sql, (tx) => tx`delete from agents where id = ${agent.id}`);
    await waitFor(
      async () => !manager.peers().some((p) => p.id === agent.id),
      5000,
      "the deleted peer to go",
    );
    const [row] = await withAdmin(
      sql,
      (tx) => tx<{ n: number }[]>`
      select count(*)::int as n from wireguard_addresses where address = ${agent.ip}::inet`,
    );
    expect(row?.n).toBe(0);
    expect(await lab.reach("10.200.0.1", ECHO_PORT, 1500)).toBe(false);
  }, 30_000);

  test("a request larger than the socket buffer (5,000 peers, ~640 KB) reaches wireguard-go whole", async () => {
    const peers = Array.from({ length: 5000 }, (_, i) => ({
      publicKey: generateKeyPair().publicKey,
      allowedIps: [`10.${201 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`],
    }));
    await device.uapi.set({ replacePeers: true, peers });
    expect((await device.uapi.get()).peers.length).toBe(5000);
  }, 30_000);
});
