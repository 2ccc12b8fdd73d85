/**
 * The WireGuard branch of Enroll (wireguard.enabled): with the wgmanager's server row present an agent or probe
 * that sends its public key gets its tunnel address and the collector's key, endpoint and allowed IPs, and its
 * row holds the key and address; a key already used is ALREADY_EXISTS and consumes nothing; without the server
 * row the enrollment succeeds without a tunnel.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { type Client, status } from "@grpc/grpc-js";
import { createKeyring } from "../../src/security/keyring.ts";
import { makeClient, unaryCall } from "../../src/simulator/client.ts";
import { withAdmin } from "../../src/storage/db.ts";
import { generateKeyPair } from "../../src/wireguard/keys.ts";
import { WgStore } from "../../src/wireguard/store.ts";
import { createTenant, createToken, type Harness, startGateway } from "./harness.ts";
import { generateKeyAndCsr, refusal } from "./helpers.ts";

interface EnrollResponse {
  id: string;
  wireguard?: {
    address: string;
    server_public_key: string;
    endpoint: string;
    allowed_ips: string[];
    persistent_keepalive_seconds: number;
  } | null;
}

let withServer: Harness;
let noServer: Harness;
let serverKey: string;
const clients: Client[] = [];

beforeAll(async () => {
  const wg = { wireguard: { enabled: true } };
  [withServer, noServer] = await Promise.all([startGateway({}, wg), startGateway({}, wg)]);
  // what the wgmanager role writes at start (no interface needed for the row)
  const keys = await new WgStore(withServer.sql, createKeyring(randomBytes(32))).ensureServer({
    interface: "wg-test",
    endpoint: "vpn.example.test:51820",
    listenPort: 51820,
    address: "10.200.0.1/16",
    pool: "10.200.0.0/16",
    allowedIps: ["10.200.0.1/32"],
    persistentKeepalive: 25,
  });
  serverKey = keys.info.publicKey;
});

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all([withServer?.stop(), noServer?.stop()]);
});

async function enrollWg(h: Harness, token: string, wgKey: string, kind: "agent" | "probe" = "agent") {
  const c = makeClient(kind === "agent" ? "AgentService" : "ProbeService", h.address, h.gw.caPem);
  clients.push(c);
  const { csrPem } = await generateKeyAndCsr(`wg-${kind}`);
  return unaryCall<EnrollResponse>(c, "Enroll", {
    token,
    csr_pem: csrPem,
    name: `wg-${randomBytes(3).toString("hex")}`,
    wireguard_public_key: wgKey,
  });
}

const rowOf = (h: Harness, table: "agents" | "probes", id: string) =>
  withAdmin(h.sql, async (tx) => {
    const [r] = await tx<{ wireguard_public_key: string | null; wireguard_ip: string | null }[]>`
      select wireguard_public_key, host(wireguard_ip) as wireguard_ip from ${tx(table)} where id = ${id}`;
    return r;
  });

describe("Enroll with a WireGuard public key", () => {
  test("returns the tunnel configuration and stores the key and address on the agent", async () => {
    const tenant = await createTenant(withServer.sql);
    const key = generateKeyPair().publicKey;
    const res = await enrollWg(withServer, await createToken(withServer.sql, tenant), key);
    expect(res.wireguard).toEqual({
      address: "10.200.0.2/32",
      server_public_key: serverKey,
      endpoint: "vpn.example.test:51820",
      allowed_ips: ["10.200.0.1/32"],
      persistent_keepalive_seconds: 25,
    });
    expect(await rowOf(withServer, "agents", res.id)).toEqual({
      wireguard_public_key: key,
      wireguard_ip: "10.200.0.2",
    });
  });

  test("probes get the next free address", async () => {
    const tenant = await createTenant(withServer.sql);
    const key = generateKeyPair().publicKey;
    const res = await enrollWg(
      withServer,
      await createToken(withServer.sql, tenant, { kind: "probe" }),
      key,
      "probe",
    );
    expect(res.wireguard?.address).toMatch(/^10\.200\.0\.\d+\/32$/);
    expect(res.wireguard?.address).not.toBe("10.200.0.2/32");
    expect(await rowOf(withServer, "probes", res.id)).toMatchObject({ wireguard_public_key: key });
  });

  test("a key another agent already uses is ALREADY_EXISTS, and the refusal consumes nothing", async () => {
    const tenant = await createTenant(withServer.sql);
    const key = generateKeyPair().publicKey;
    const first = await enrollWg(withServer, await createToken(withServer.sql, tenant), key);
    expect(first.wireguard?.address).toBeTruthy();
    const token = await createToken(withServer.sql, tenant, { maxUses: 1 });
    const e = await refusal(enrollWg(withServer, token, key));
    expect(e.code).toBe(status.ALREADY_EXISTS);
    expect(e.details).toContain("generate a new key pair");
    const counts = await withAdmin(withServer.sql, async (tx) => {
      const [a] = await tx<
        { n: number }[]
      >`select count(*)::int as n from agents where tenant_id = ${tenant}`;
      const [t] = await tx<{ uses: number }[]>`
        select uses from enrollment_tokens where tenant_id = ${tenant} and max_uses = 1`;
      return { agents: a?.n, uses: t?.uses };
    });
    expect(counts).toEqual({ agents: 1, uses: 0 });
    // the same single-use token works with a fresh key
    const ok = await enrollWg(withServer, token, generateKeyPair().publicKey);
    expect(ok.wireguard?.address).toBeTruthy();
  });

  test("a malformed key is INVALID_ARGUMENT", async () => {
    const tenant = await createTenant(withServer.sql);
    const e = await refusal(enrollWg(withServer, await createToken(withServer.sql, tenant), "not-a-key"));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toContain("wireguard_public_key");
  });

  test("without the wgmanager's server row the agent enrolls without a tunnel", async () => {
    const tenant = await createTenant(noServer.sql);
    const res = await enrollWg(
      noServer,
      await createToken(noServer.sql, tenant),
      generateKeyPair().publicKey,
    );
    expect(res.id).toBeTruthy();
    expect(res.wireguard ?? null).toBeNull();
    expect(await rowOf(noServer, "agents", res.id)).toEqual({
      wireguard_public_key: null,
      wireguard_ip: null,
    });
  });
});
