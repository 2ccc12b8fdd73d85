/**
 * GET /agents and /probes: the page PostgreSQL builds as JSON (listJson) says exactly what the row objects
 * of GET /agents/:id say (timestamps as toISOString, arrays, addresses, config, nulls), and pagination,
 * filters, sorting and row-level security hold.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { type Harness, harness, login, seedTenant, seedUser } from "./harness.ts";

let h: Harness;
let tenant: string;
let token: string;
let otherToken: string;
const get = (path: string, tok = token) => h.call("GET", path, { token: tok });

beforeAll(async () => {
  h = await harness();
  const sql = h.deps.sql;
  tenant = await seedTenant(h, "fleet-a");
  const other = await seedTenant(h, "fleet-b");
  await seedUser(h, "viewer@fleet.test", "viewer", tenant);
  await seedUser(h, "admin@fleet-b.test", "admin", other);
  await seedUser(h, "op@fleet.test", "operator", tenant);
  token = (await login(h, "viewer@fleet.test")).access_token;
  otherToken = (await login(h, "admin@fleet-b.test")).access_token;
  await sql`
    insert into agents (tenant_id, name, hostname, ip_addresses, os, os_version, arch, version, status, last_seen,
                        config, tags, wireguard_ip, created_at)
    values
      (${tenant}, 'web-1', 'web-1.lan', '{10.0.0.5,fd00::5}', 'linux', '6.1', 'x86_64', '1.2.3', 'online',
       '2026-11-25 18:52:00.123999+00', '{"interval": 1.50, "nested": {"b": [1, "x", null], "a": true}, "é": "ü"}',
       '{web,prod}', '10.200.0.5', '2026-01-02 03:04:05.678901+01'),
      (${tenant}, 'db-1', null, '{}', null, null, null, null, 'offline', null, '{}', '{}', null, now()),
      (${tenant}, 'Zeta "quoted" \\ name', 'z.lan', '{192.168.1.1}', 'linux', null, null, null, 'pending', now(),
       '{"k": "line\\nbreak"}', '{db}', null, now()),
      (${other}, 'theirs', null, '{}', null, null, null, null, 'online', null, '{}', '{}', null, now())`;
  await sql`
    insert into probes (tenant_id, name, location, type, status, last_seen, config, tags)
    values (${tenant}, 'probe-1', 'Paris', 'external', 'online', '2026-11-25 10:00:00.5+00', '{"a": 1}', '{edge}'),
           (${tenant}, 'probe-2', null, 'internal', 'offline', null, '{}', '{}')`;
});

describe("lists built by PostgreSQL", () => {
  for (const kind of ["agents", "probes"] as const) {
    test(`${kind}: every item equals GET /${kind}/:id, byte for byte once parsed`, async () => {
      const r = await get(`/api/v1/${kind}?limit=500`);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toStartWith("application/json");
      expect(r.body.data.length).toBe(kind === "agents" ? 3 : 2);
      expect(r.body.pagination).toEqual({ limit: 500, offset: 0, total: kind === "agents" ? 3 : 2 });
      for (const item of r.body.data) {
        const one = await get(`/api/v1/${kind}/${item.id}`);
        expect(one.status).toBe(200);
        expect(JSON.stringify(item)).toBe(JSON.stringify(one.body)); // same keys, same order, same values
      }
    });
  }

  test("values as the row objects give them", async () => {
    const r = await get("/api/v1/agents?q=web");
    const [a] = r.body.data;
    expect(a.last_seen).toBe("2026-11-25T18:52:00.123Z");
    expect(a.created_at).toBe("2026-01-02T02:04:05.678Z");
    expect(a.ip_addresses).toEqual(["10.0.0.5", "fd00::5"]); // plain addresses, in their order, no mask
    expect(a.primary_ip).toBe("10.0.0.5");
    expect(a.wireguard_ip).toBe("10.200.0.5"); // plain address, not inet text with its /32
    expect(a.config).toEqual({ interval: 1.5, nested: { b: [1, "x", null], a: true }, é: "ü" });
    expect(a.tags).toEqual(["web", "prod"]);
  });

  test("sorting, paging, filters; a page past the end still reports the total", async () => {
    const names = async (qs: string) =>
      (await get(`/api/v1/agents?${qs}`)).body.data.map((x: { name: string }) => x.name);
    // the database's collation (C in the embedded cluster): capitals first
    expect(await names("sort=name")).toEqual(['Zeta "quoted" \\ name', "db-1", "web-1"]);
    expect(await names("sort=-name&limit=2")).toEqual(["web-1", "db-1"]);
    expect(await names("sort=-last_seen")).toEqual([expect.any(String), expect.any(String), "db-1"]); // nulls last
    expect(await names("status=offline")).toEqual(["db-1"]);
    expect(await names("tag=prod")).toEqual(["web-1"]);
    const page = await get("/api/v1/agents?limit=2&offset=2");
    expect(page.body.data.length).toBe(1);
    expect(page.body.pagination).toEqual({ limit: 2, offset: 2, total: 3 });
    const past = await get("/api/v1/agents?offset=10");
    expect(past.body).toEqual({ data: [], pagination: { limit: 50, offset: 10, total: 3 } });
    const none = await get("/api/v1/agents?q=nothing-like-this");
    expect(none.body).toEqual({ data: [], pagination: { limit: 50, offset: 0, total: 0 } });
    const bad = await get("/api/v1/agents?sort=password_hash");
    expect(bad.status).toBe(422);
    expect(bad.body.details[0].path).toBe("query/sort");
  });

  test("another tenant sees only its own", async () => {
    const r = await get("/api/v1/agents", otherToken);
    expect(r.body.data.map((x: { name: string }) => x.name)).toEqual(["theirs"]);
    expect((await get("/api/v1/probes", otherToken)).body.pagination.total).toBe(0);
  });
});

describe("addresses are plain (no /32 or /128 mask) wherever the API answers them", () => {
  test("detail, PATCH answer, probe detail and GraphQL", async () => {
    const [op] = await h.deps.sql`select id from agents where name = 'web-1'`;
    const id = op?.id as string;
    const detail = await get(`/api/v1/agents/${id}`);
    expect(detail.body.ip_addresses).toEqual(["10.0.0.5", "fd00::5"]);
    expect(detail.body.wireguard_ip).toBe("10.200.0.5");

    const opToken = (await login(h, "op@fleet.test")).access_token;
    const patched = await h.call("PATCH", `/api/v1/agents/${id}`, {
      token: opToken,
      body: { tags: ["web"] },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.ip_addresses).toEqual(["10.0.0.5", "fd00::5"]);
    expect(patched.body.wireguard_ip).toBe("10.200.0.5");
    // the audit entry's before/after carry the same plain values
    const [entry] = await h.deps.sql`
      select old_value, new_value from audit_logs where resource_id = ${id} and action = 'agent.update'`;
    expect(entry?.old_value.wireguard_ip).toBe("10.200.0.5");
    expect(entry?.new_value.ip_addresses).toEqual(["10.0.0.5", "fd00::5"]);

    const [p] = await h.deps.sql`
      update probes set wireguard_ip = '10.200.0.9' where name = 'probe-1' returning id`;
    const probe = await get(`/api/v1/probes/${p?.id}`);
    expect(probe.body.wireguard_ip).toBe("10.200.0.9");
    const probes = await get("/api/v1/probes?q=probe-1");
    expect(probes.body.data[0].wireguard_ip).toBe("10.200.0.9");

    const gql = await h.call("POST", "/api/graphql", {
      token,
      body: {
        query:
          'query($id: ID!) { agent(id: $id) { ip_addresses wireguard_ip } agents(q: "web") { data { ip_addresses wireguard_ip } } }',
        variables: { id },
      },
    });
    expect(gql.body.errors).toBeUndefined();
    expect(gql.body.data.agent).toEqual({
      ip_addresses: ["10.0.0.5", "fd00::5"],
      wireguard_ip: "10.200.0.5",
    });
    expect(gql.body.data.agents.data).toEqual([
      { ip_addresses: ["10.0.0.5", "fd00::5"], wireguard_ip: "10.200.0.5" },
    ]);
  });
});

describe("targets: their tests and assigned probes", () => {
  test("create, read, filter, replace the assignment, delete; another tenant's probe is refused (422)", async () => {
    const op = (await login(h, "op@fleet.test")).access_token;
    const probes = await h.deps.sql`select id, name from probes where tenant_id = ${tenant} order by name`;
    const [p1, p2] = probes.map((p) => p.id as string);
    const [theirs] = await h.deps.sql`
      insert into probes (tenant_id, name) select id, 'their-probe' from tenants where slug = 'fleet-b' returning id`;
    const body = {
      name: "shop",
      address: "https://shop.example.test",
      type: "http",
      tests: [{ type: "http", expect_status: 200 }, { type: "tls" }],
      tags: ["web"],
      probe_ids: [p2, p1],
    };
    const made = await h.call("POST", "/api/v1/targets", { token: op, body });
    expect(made.status).toBe(201);
    expect(made.body.tests).toEqual(body.tests);
    expect(made.body.probe_ids).toEqual([p1, p2].sort());
    const id = made.body.id as string;
    expect((await get(`/api/v1/targets/${id}`)).body).toEqual(made.body);
    expect(
      (await get("/api/v1/targets?type=http&tag=web&enabled=true")).body.data.map(
        (x: { id: string }) => x.id,
      ),
    ).toEqual([id]);
    expect((await get("/api/v1/targets?type=icmp")).body.data).toEqual([]);

    const foreign = await h.call("PATCH", `/api/v1/targets/${id}`, {
      token: op,
      body: { probe_ids: [p1, theirs?.id] },
    });
    expect(foreign.status).toBe(422);
    expect(foreign.body.details[0].path).toBe("body/probe_ids");
    expect(foreign.body.error).not.toContain("their-probe");
    expect((await get(`/api/v1/targets/${id}`)).body.probe_ids).toEqual([p1, p2].sort()); // unchanged
    const bad = await h.call("POST", "/api/v1/targets", {
      token: op,
      body: { ...body, probe_ids: [crypto.randomUUID()] },
    });
    expect(bad.status).toBe(422);
    expect((await get("/api/v1/targets?q=shop")).body.pagination.total).toBe(1); // nothing half-written

    const moved = await h.call("PATCH", `/api/v1/targets/${id}`, {
      token: op,
      body: { probe_ids: [p1], enabled: false },
    });
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({ probe_ids: [p1], enabled: false, tests: body.tests });
    const [a] = await h.deps
      .sql`select old_value, new_value from audit_logs where resource_id = ${id} and action = 'target.update'`;
    expect(a?.old_value.probe_ids).toEqual([p1, p2].sort());
    expect(a?.new_value.probe_ids).toEqual([p1]);

    const del = await h.call("DELETE", `/api/v1/targets/${id}`, { token: op });
    expect(del.status).toBe(204);
    expect((await get(`/api/v1/targets/${id}`)).status).toBe(404);
    const [left] = await h.deps.sql`select count(*)::int as n from target_probes where target_id = ${id}`;
    expect(left?.n).toBe(0);
  });
});

describe("probes and agents: what PATCH changes", () => {
  test("a probe's location is set and cleared; an agent has none to set (422)", async () => {
    const op = (await login(h, "op@fleet.test")).access_token;
    const [p] = await h.deps.sql`select id from probes where name = 'probe-2'`;
    const set = await h.call("PATCH", `/api/v1/probes/${p?.id}`, { token: op, body: { location: "Lyon" } });
    expect(set.status).toBe(200);
    expect(set.body.location).toBe("Lyon");
    const kept = await h.call("PATCH", `/api/v1/probes/${p?.id}`, { token: op, body: { tags: ["dc2"] } });
    expect(kept.body).toMatchObject({ location: "Lyon", tags: ["dc2"] });
    const cleared = await h.call("PATCH", `/api/v1/probes/${p?.id}`, { token: op, body: { location: null } });
    expect(cleared.body.location).toBeNull();
    const [a] = await h.deps.sql`select id from agents where name = 'db-1'`;
    const agent = await h.call("PATCH", `/api/v1/agents/${a?.id}`, { token: op, body: { location: "Lyon" } });
    expect(agent.status).toBe(422);
    expect(agent.body.details[0].path).toBe("body/location");
  });
});
