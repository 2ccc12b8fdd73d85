/** The OpenAPI document is generated from the routes; the docs page renders it with nothing from elsewhere. */
import { beforeAll, describe, expect, test } from "bun:test";
import { DOCS_HTML } from "../../src/api/openapi/page.ts";
import { type Harness, harness } from "./harness.ts";

let h: Harness;
beforeAll(async () => {
  h = await harness();
});

describe("OpenAPI", () => {
  test("document: every API route, its parameters, body schema, role and security", async () => {
    const r = await h.call("GET", "/api/openapi.json");
    expect(r.status).toBe(200);
    const doc = r.body;
    expect(doc.openapi).toBe("3.1.0");
    const ops = Object.values(doc.paths).flatMap((p) => Object.keys(p as object));
    expect(ops.length).toBeGreaterThan(80);
    const agent = doc.paths["/api/v1/agents/{id}"].patch;
    expect(agent["x-required-role"]).toBe("operator");
    expect(agent.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
    expect(agent.parameters[0]).toMatchObject({
      name: "id",
      in: "path",
      required: true,
      schema: { format: "uuid" },
    });
    expect(agent.parameters.map((p: { name: string }) => p.name)).toContain("X-Tenant-ID");
    expect(agent.requestBody.content["application/json"].schema.properties.tags.type).toBe("array");
    const login = doc.paths["/api/v1/auth/login"].post;
    expect(login.security).toEqual([]);
    expect(login.requestBody.content["application/json"].schema.required).toEqual(["email", "password"]);
    const metrics = doc.paths["/api/v1/agents/{id}/metrics"].get;
    expect(metrics.parameters.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining(["id", "from", "to", "resolution", "metrics"]),
    );
    expect(doc.paths["/api/graphql"].post["x-required-role"]).toBe("viewer");
    expect(doc.paths["/api/v1/admin/tenants"].get["x-required-role"]).toBe("superadmin");
    expect(JSON.stringify(doc)).not.toContain("password_hash");
  });

  test("docs page: served as HTML and references no external URL", async () => {
    const r = await h.call("GET", "/api/docs");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/html");
    expect(r.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = r.body as string;
    expect(html).toBe(DOCS_HTML);
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?\/\//i); // protocol-relative
    expect(html).not.toMatch(/@import|url\(/i);
    expect(html).toContain('fetch("openapi.json")');
    const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1] ?? "";
    expect(() => new Function(script)).not.toThrow(); // at least valid JavaScript (no browser on this machine)
  });
});
