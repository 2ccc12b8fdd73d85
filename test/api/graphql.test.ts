/**
 * GraphQL at /api/graphql: same authentication, roles, tenant scoping, validation and audit as REST, because
 * every field runs the REST route that owns it.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { MAX_REST_CALLS } from "../../src/api/graphql/index.ts";
import { type Harness, harness, login, seedTenant, seedUser } from "./harness.ts";

let h: Harness;
let tenantA: string;
let agentA: string;
const tok: Record<string, string> = {};

beforeAll(async () => {
  h = await harness();
  tenantA = await seedTenant(h, "gql-a");
  const tenantB = await seedTenant(h, "gql-b");
  for (const r of ["viewer", "operator"]) await seedUser(h, `${r}@gql.test`, r, tenantA);
  await seedUser(h, "admin@gql-b.test", "admin", tenantB);
  await seedUser(h, "root@gql.test", "superadmin", null);
  for (const [k, e] of [
    ["viewer", "viewer@gql.test"],
    ["operator", "operator@gql.test"],
    ["other", "admin@gql-b.test"],
    ["root", "root@gql.test"],
  ] as const)
    tok[k] = (await login(h, e)).access_token;
  agentA = (
    await h.deps
      .sql`insert into agents (tenant_id, name, tags) values (${tenantA}, 'gql-agent', '{web}') returning id`
  )[0]?.id as string;
});

const gql = (
  token: string | undefined,
  query: string,
  variables?: unknown,
  headers: Record<string, string> = {},
) => h.call("POST", "/api/graphql", { token, body: { query, ...(variables ? { variables } : {}) }, headers });

describe("GraphQL", () => {
  test("reads: lists, one object, nested metrics — scoped to the caller's tenant", async () => {
    const q = `query($id: ID!) {
      agents(tag: "web") { data { id name tags } pagination { total } }
      agent(id: $id) { name metrics(from: "-1h") }
      me
    }`;
    const r = await gql(tok.viewer, q, { id: agentA });
    expect(r.status).toBe(200);
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data.agents).toEqual({
      data: [{ id: agentA, name: "gql-agent", tags: ["web"] }],
      pagination: { total: 1 },
    });
    expect(r.body.data.agent.metrics.resolution).toBe("raw");
    expect(r.body.data.me.email).toBe("viewer@gql.test");

    const other = await gql(tok.other, q, { id: agentA });
    expect(other.body.data.agents.data).toEqual([]);
    expect(other.body.data.agent).toBeNull();
  });

  test("superadmins name the tenant with X-Tenant-ID, as in REST", async () => {
    const without = await gql(tok.root, "{ agents { pagination { total } } }");
    expect(without.body.errors[0].extensions.status).toBe(400);
    const withTenant = await gql(tok.root, "{ agents { pagination { total } } }", undefined, {
      "x-tenant-id": tenantA,
    });
    expect(withTenant.body.data.agents.pagination.total).toBe(1);
  });

  test("mutations: roles enforced, validation errors carry field paths, changes audited", async () => {
    const m = `mutation($id: ID!) { updateAgent(id: $id, input: {tags: ["web", "edge"]}) { tags } }`;
    const denied = await gql(tok.viewer, m, { id: agentA });
    expect(denied.body.errors[0].extensions).toMatchObject({ code: "FORBIDDEN", status: 403 });
    expect(denied.body.data.updateAgent).toBeNull();
    const ok = await gql(tok.operator, m, { id: agentA }, { "user-agent": "gql-test" });
    expect(ok.body.data.updateAgent.tags).toEqual(["web", "edge"]);
    const [a] = await h.deps
      .sql`select actor, user_agent from audit_logs where resource_id = ${agentA} and action = 'agent.update'`;
    expect(a).toEqual({ actor: "operator@gql.test", user_agent: "gql-test" });

    const bad = await gql(
      tok.operator,
      `mutation { createAlertRule(input: {name: "", severity: "loud", type: "threshold"}) }`,
    );
    expect(bad.body.errors[0].extensions.status).toBe(422);
    const paths = bad.body.errors[0].extensions.details.map((d: { path: string }) => d.path);
    expect(paths).toContain("body/severity");
  });

  test("no or bad token: 401 before anything runs; malformed and abusive documents are refused", async () => {
    expect((await gql(undefined, "{ me }")).status).toBe(401);
    expect((await gql("not.a.token", "{ me }")).status).toBe(401);
    const syntax = await gql(tok.viewer, "{ agents { ");
    expect(syntax.body.errors[0].message).toContain("Syntax Error");
    const unknown = await gql(tok.viewer, "{ passwords }");
    expect(unknown.body.errors[0].message).toContain("passwords");
    const deep = await gql(tok.viewer, "{ a { b { c { d { e { f { g { h { i { j } } } } } } } } } }");
    expect(deep.body.errors.map((e: { message: string }) => e.message).join()).toContain("nested deeper");
    const big = await gql(tok.viewer, `{ ${"me ".repeat(8000)} }`);
    expect(big.status).toBe(422); // query longer than 20 000 characters
    const noBody = await h.call("POST", "/api/graphql", { token: tok.viewer, body: { variables: {} } });
    expect(noBody.status).toBe(422);
  });

  test("one document reads at most MAX_REST_CALLS resources: past that, an error saying how to ask for less", async () => {
    const aliases = Array.from({ length: MAX_REST_CALLS + 5 }, (_, i) => `m${i}: me`).join(" ");
    const r = await gql(tok.viewer, `{ ${aliases} }`);
    expect(r.status).toBe(200);
    expect(r.body.data.m0.email).toBe("viewer@gql.test");
    expect(r.body.data[`m${MAX_REST_CALLS - 1}`].email).toBe("viewer@gql.test");
    expect(r.body.data[`m${MAX_REST_CALLS}`]).toBeNull();
    const tooMany = r.body.errors.filter(
      (e: { extensions: { code: string } }) => e.extensions.code === "TOO_COMPLEX",
    );
    expect(tooMany).toHaveLength(5);
    expect(tooMany[0].message).toContain("split it");
  });
});
