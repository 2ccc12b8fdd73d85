/**
 * Dialing the gateway by IP address (an appliance reached by its address, not a name): the client sends no IP
 * as TLS server name (Bun refuses one) yet still checks the certificate against that IP; an address the
 * certificate does not name is refused.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { enroll, ipHost } from "../../src/simulator/client.ts";
import { createTenant, createToken, type Harness, startGateway } from "./harness.ts";

let h: Harness;
let other: Harness;
beforeAll(async () => {
  h = await startGateway({ host: "127.0.0.1" });
  // a second gateway on another loopback address that its certificate does not name
  other = await startGateway({ host: "127.0.0.2" }, {}, { sql: h.sql });
}, 60_000);
afterAll(async () => {
  await other?.stop();
  await h?.stop();
});

test("ipHost recognises IPv4 and bracketed IPv6 literals only", () => {
  expect(ipHost("127.0.0.1:4443")).toBe("127.0.0.1");
  expect(ipHost("[::1]:4443")).toBe("::1");
  expect(ipHost("10.1.2.3")).toBe("10.1.2.3");
  expect(ipHost("localhost:4443")).toBe("");
  expect(ipHost("collector.example:4443")).toBe("");
});

test("enrolling through 127.0.0.1 verifies the certificate's IP and succeeds", async () => {
  const tenant = await createTenant(h.sql);
  const token = await createToken(h.sql, tenant);
  const id = await enroll({ address: `127.0.0.1:${h.gw.port}`, caPem: h.gw.caPem, token, kind: "agent" });
  expect(id.tenantId).toBe(tenant);
});

test("an IP address the certificate does not name is refused by the client", async () => {
  const tenant = await createTenant(h.sql);
  const token = await createToken(h.sql, tenant);
  const err = await enroll({
    address: `127.0.0.2:${other.gw.port}`,
    caPem: other.gw.caPem,
    token,
    kind: "agent",
  }).then(
    () => null,
    (e: Error) => e,
  );
  expect(err?.message).toMatch(/UNAVAILABLE/);
  expect(err?.message).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
  expect(err?.message).toContain("IP: 127.0.0.2 is not in the cert's list");
});
