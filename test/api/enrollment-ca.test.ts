/**
 * GET /api/v1/enrollment-ca: the CA certificate agents trust when they enroll (the appliance's operator has no other
 * way to get it): 404 with what to do before the gateway created it, the collector's CA after, an operator-supplied
 * gateway.tls.ca_file instead when configured, admins only.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { silentLogger } from "../../src/observability/logger.ts";
import { loadOrCreateCa } from "../../src/pki/ca.ts";
import { tempDir } from "../support/tmp.ts";
import { type Harness, harness, login, seedTenant, seedUser } from "./harness.ts";

let h: Harness;
let admin: string;
let viewer: string;

beforeAll(async () => {
  h = await harness();
  const tenant = await seedTenant(h, "ca-tenant");
  await seedUser(h, "admin@ca.test", "admin", tenant);
  await seedUser(h, "viewer@ca.test", "viewer", tenant);
  admin = (await login(h, "admin@ca.test")).access_token;
  viewer = (await login(h, "viewer@ca.test")).access_token;
});

describe("GET /api/v1/enrollment-ca", () => {
  test("admins only", async () => {
    expect((await h.call("GET", "/api/v1/enrollment-ca")).status).toBe(401);
    expect((await h.call("GET", "/api/v1/enrollment-ca", { token: viewer })).status).toBe(403);
  });

  test("before the gateway created the CA: 404 saying to start the gateway role", async () => {
    const r = await h.call("GET", "/api/v1/enrollment-ca", { token: admin });
    expect(r.status).toBe(404);
    expect(JSON.stringify(r.body)).toContain("start it (serve --roles gateway)");
  });

  test("the collector's own CA: its certificate, never its key", async () => {
    const ca = await loadOrCreateCa(h.deps.sql, h.deps.keyring, silentLogger());
    const r = await h.call("GET", "/api/v1/enrollment-ca", { token: admin });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ certificate_pem: ca.certPem, source: "collector" });
    expect(JSON.stringify(r.body)).not.toContain("PRIVATE KEY");
  });

  test("gateway.tls.ca_file: that file's certificate; an unreadable file is a 404 naming the setting", async () => {
    const file = join(tempDir("secumon-ca-"), "ca.pem");
    writeFileSync(file, "-----BEGIN CERTIFICATE-----\nb3BlcmF0b3I=\n-----END CERTIFICATE-----\n");
    const own = await harness({});
    own.deps.config.gateway.tls.ca_file = file;
    const tenant = await seedTenant(own, "ca-file");
    await seedUser(own, "admin@cafile.test", "admin", tenant);
    const token = (await login(own, "admin@cafile.test")).access_token;
    const r = await own.call("GET", "/api/v1/enrollment-ca", { token });
    expect(r.status).toBe(200);
    expect(r.body.source).toBe("gateway.tls.ca_file");
    expect(r.body.certificate_pem).toContain("b3BlcmF0b3I=");

    own.deps.config.gateway.tls.ca_file = join(tempDir("secumon-ca-"), "missing.pem");
    const missing = await own.call("GET", "/api/v1/enrollment-ca", { token });
    expect(missing.status).toBe(404);
    expect(JSON.stringify(missing.body)).toContain("gateway.tls.ca_file cannot be read");
  });
});
