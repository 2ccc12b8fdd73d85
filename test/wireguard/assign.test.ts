/**
 * Migration 050 against a real PostgreSQL: secumon_wg_assign (allocation, idempotence, concurrency, errors),
 * release on delete, per-tenant pools, the change notifications, and what each database role may read.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import type { Sql } from "postgres";
import { withAdmin, withTenant } from "../../src/storage/db.ts";
import { generateKeyPair } from "../../src/wireguard/keys.ts";
import { migratedSql } from "../support/pg.ts";

let sql: Sql;

async function tenant(slug: string): Promise<string> {
  const [t] = await withAdmin(
    sql,
    (tx) => tx<{ id: string }[]>`
    insert into tenants (name, slug) values (${slug}, ${slug}) returning id`,
  );
  return (t as { id: string }).id;
}

async function agent(tenantId: string, name = `a-${crypto.randomUUID().slice(0, 8)}`): Promise<string> {
  const [a] = await withAdmin(
    sql,
    (tx) => tx<{ id: string }[]>`
    insert into agents (tenant_id, name) values (${tenantId}, ${name}) returning id`,
  );
  return (a as { id: string }).id;
}

async function probe(tenantId: string): Promise<string> {
  const [p] = await withAdmin(
    sql,
    (tx) => tx<{ id: string }[]>`
    insert into probes (tenant_id, name) values (${tenantId}, ${`p-${crypto.randomUUID().slice(0, 8)}`}) returning id`,
  );
  return (p as { id: string }).id;
}

const assign = (kind: string, id: string, key: string) =>
  withAdmin(sql, async (tx) => {
    const [r] = await tx<{ ip: string }[]>`select host(secumon_wg_assign(${kind}, ${id}, ${key})) as ip`;
    return (r as { ip: string }).ip;
  });

async function setServer(pool = "10.200.0.0/16", address = "10.200.0.1/16"): Promise<void> {
  await sql`delete from wireguard_server`;
  await sql`
    insert into wireguard_server (interface, public_key, private_key_sealed, listen_port, address, pool, allowed_ips)
    values ('wg-test', ${generateKeyPair().publicKey}, '\\x00', 51820, ${address}, ${pool}, '{10.200.0.1/32}')`;
}

beforeAll(async () => {
  ({ sql } = await migratedSql());
}, 60_000);

describe("secumon_wg_assign", () => {
  test("before the wgmanager ever ran, enrollment gets a clear error", async () => {
    const t = await tenant("wg-none");
    const a = await agent(t);
    await sql`delete from wireguard_server`;
    await expect(assign("agent", a, generateKeyPair().publicKey)).rejects.toThrow(
      /WireGuard is not set up on this collector yet/,
    );
  });

  test("allocates in order, skipping the network, the collector and used ones; freed ones return once the pool is full", async () => {
    await setServer("10.210.0.0/29", "10.210.0.1/29");
    const t = await tenant("wg-small");
    const ips: string[] = [];
    for (let i = 0; i < 5; i++) ips.push(await assign("agent", await agent(t), generateKeyPair().publicKey));
    // /29: .0 network, .1 collector, .2-.6 hosts, .7 broadcast
    expect(ips).toEqual(["10.210.0.2", "10.210.0.3", "10.210.0.4", "10.210.0.5", "10.210.0.6"]);
    const last = await agent(t);
    const err = await assign("agent", last, generateKeyPair().publicKey).catch((e) => e);
    expect(err.code).toBe("53400");
    expect(err.message).toMatch(/no free WireGuard address left in pool 10\.210\.0\.0\/29/);

    // deleting an agent releases its address, and the next enrollment reuses it
    const [owner] = await withAdmin(
      sql,
      (tx) => tx<{ id: string }[]>`
      select id from agents where wireguard_ip = '10.210.0.4'`,
    );
    await withAdmin(sql, (tx) => tx`delete from agents where id = ${(owner as { id: string }).id}`);
    expect(await assign("agent", last, generateKeyPair().publicKey)).toBe("10.210.0.4");
  });

  test("a freed address is not handed out again while the pool has room past the highest one", async () => {
    await setServer("10.211.0.0/24", "10.211.0.1/24");
    const t = await tenant("wg-order");
    const a = await agent(t);
    expect(await assign("agent", a, generateKeyPair().publicKey)).toBe("10.211.0.2");
    expect(await assign("agent", await agent(t), generateKeyPair().publicKey)).toBe("10.211.0.3");
    await withAdmin(sql, (tx) => tx`delete from agents where id = ${a}`);
    expect(await assign("agent", await agent(t), generateKeyPair().publicKey)).toBe("10.211.0.4");
  });

  test("is idempotent: the same principal keeps its address, a new key is recorded", async () => {
    await setServer();
    const t = await tenant("wg-idem");
    const a = await agent(t);
    const k1 = generateKeyPair().publicKey;
    const ip1 = await assign("agent", a, k1);
    expect(await assign("agent", a, k1)).toBe(ip1);
    const k2 = generateKeyPair().publicKey;
    expect(await assign("agent", a, k2)).toBe(ip1);
    const [row] = await withAdmin(
      sql,
      (tx) => tx<{ key: string; ip: string }[]>`
      select wireguard_public_key as key, host(wireguard_ip) as ip from agents where id = ${a}`,
    );
    expect(row).toEqual({ key: k2, ip: ip1 });
  });

  test("agents and probes share one address space; a key cannot be reused by another principal", async () => {
    await setServer();
    const t = await tenant("wg-mixed");
    const key = generateKeyPair().publicKey;
    const a = await agent(t);
    const p = await probe(t);
    const ipA = await assign("agent", a, key);
    const err = await assign("probe", p, key).catch((e) => e);
    expect(err.code).toBe("23505");
    expect(err.message).toMatch(/already used by another agent/);
    const ipP = await assign("probe", p, generateKeyPair().publicKey);
    expect(ipP).not.toBe(ipA);
  });

  test("concurrent enrollments never get the same address", async () => {
    await setServer();
    const t = await tenant("wg-race");
    const ids = await Promise.all(Array.from({ length: 40 }, () => agent(t)));
    const ips = await Promise.all(ids.map((id) => assign("agent", id, generateKeyPair().publicKey)));
    expect(new Set(ips).size).toBe(40);
  });

  test("bad input is refused with the SQLSTATE the gateway maps", async () => {
    await setServer();
    const t = await tenant("wg-bad");
    const a = await agent(t);
    for (const [kind, id, key, code, msg] of [
      ["host", a, generateKeyPair().publicKey, "22023", /must be 'agent' or 'probe'/],
      ["agent", a, "not-a-key", "22023", /32 bytes in base64/],
      ["agent", crypto.randomUUID(), generateKeyPair().publicKey, "P0002", /not found/],
    ] as const) {
      const err = await assign(kind, id, key).catch((e) => e);
      expect({ code: err.code, ok: msg.test(err.message) }).toEqual({ code, ok: true });
    }
  });

  test("a tenant with its own pool allocates there", async () => {
    await setServer();
    const t = await tenant("wg-own");
    await withAdmin(
      sql,
      (tx) => tx`insert into wireguard_pools (tenant_id, pool) values (${t}, '10.201.0.0/24')`,
    );
    expect(await assign("agent", await agent(t), generateKeyPair().publicKey)).toBe("10.201.0.1");
    // pools may not overlap
    const other = await tenant("wg-own2");
    await expect(
      withAdmin(
        sql,
        (tx) => tx`insert into wireguard_pools (tenant_id, pool) values (${other}, '10.201.0.128/25')`,
      ),
    ).rejects.toThrow(/wireguard_pools_no_overlap/);
  });

  test("only secumon_admin may call it; a tenant session reads the server's public columns only", async () => {
    await setServer();
    const t = await tenant("wg-roles");
    const a = await agent(t);
    await expect(
      withTenant(sql, t, (tx) => tx`select secumon_wg_assign('agent', ${a}, ${generateKeyPair().publicKey})`),
    ).rejects.toThrow(/permission denied/);
    const [pub] = await withTenant(
      sql,
      t,
      (tx) => tx`select public_key, endpoint, allowed_ips from wireguard_server`,
    );
    expect(pub?.public_key).toHaveLength(44);
    await expect(
      withTenant(sql, t, (tx) => tx`select private_key_sealed from wireguard_server`),
    ).rejects.toThrow(/permission denied/);
  });

  test("clearing the key releases the address", async () => {
    await setServer();
    const t = await tenant("wg-clear");
    const a = await agent(t);
    await assign("agent", a, generateKeyPair().publicKey);
    await withTenant(sql, t, (tx) => tx`update agents set wireguard_public_key = null where id = ${a}`);
    const rows = await withAdmin(
      sql,
      (tx) => tx`
      select 1 from wireguard_addresses where agent_id = ${a}
      union all select 1 from agents where id = ${a} and wireguard_ip is not null`,
    );
    expect(rows.length).toBe(0);
  });
});

describe("change notifications", () => {
  test("enrollment, revocation and deletion each notify secumon_wireguard_changed", async () => {
    await setServer();
    const t = await tenant("wg-notify");
    const got: { op: string; kind: string; id: string; tenant_id: string }[] = [];
    const sub = await sql.listen("secumon_wireguard_changed", (p) => got.push(JSON.parse(p)));
    const a = await agent(t);
    await assign("agent", a, generateKeyPair().publicKey);
    await withAdmin(sql, (tx) => tx`update agents set last_seen = now() where id = ${a}`); // irrelevant: no notify
    await withAdmin(sql, (tx) => tx`update agents set status = 'revoked' where id = ${a}`);
    await withAdmin(sql, (tx) => tx`delete from agents where id = ${a}`);
    const deadline = Date.now() + 5000;
    while (got.filter((g) => g.id === a).length < 3 && Date.now() < deadline) await Bun.sleep(20);
    await sub.unlisten();
    expect(got.filter((g) => g.id === a).map((g) => g.op)).toEqual(["UPDATE", "UPDATE", "DELETE"]);
    expect(got.find((g) => g.id === a)).toMatchObject({ kind: "agent", tenant_id: t });
  });
});
