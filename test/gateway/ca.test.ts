/**
 * The collector CA (src/pki/ca.ts) on a fresh database: created once at first start with its private key
 * sealed under the master key, reused by every later start and by a second instance starting at the same
 * moment; and what the gateway does with certificates of that CA that do not name an agent or probe.
 */
import "reflect-metadata"; // before @peculiar/x509
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import * as x509 from "@peculiar/x509";
import { silentLogger } from "../../src/observability/logger.ts";
import { generateKeyAndCsr, loadOrCreateCa } from "../../src/pki/ca.ts";
import { compress, encodePayload } from "../../src/protocol/index.ts";
import { createKeyring } from "../../src/security/keyring.ts";
import { enroll, identityClient, unaryCall } from "../../src/simulator/client.ts";
import { withAdmin } from "../../src/storage/db.ts";
import { migratedSql } from "../support/pg.ts";
import { countMessages, createTenant, createToken, type Harness, startGateway } from "./harness.ts";
import { refusal } from "./helpers.ts";

x509.cryptoProvider.set(crypto);

describe("the collector CA", () => {
  test("created once at first start, its key sealed; later starts and a concurrent instance use the same CA", async () => {
    const { sql } = await migratedSql();
    const keyring = createKeyring(randomBytes(32));
    expect(await sql`select 1 from gateway_ca`).toHaveLength(0);
    // two instances starting at the same moment on an empty database: one CA between them
    const [a, b] = await Promise.all([
      loadOrCreateCa(sql, keyring, silentLogger()),
      loadOrCreateCa(sql, keyring, silentLogger()),
    ]);
    expect(b.certPem).toBe(a.certPem);
    const rows = await sql<{ cert_pem: string; key_sealed: Uint8Array }[]>`select * from gateway_ca`;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.cert_pem).toBe(a.certPem);
    // the key is not stored in clear: no PKCS#8 header, no PEM
    const sealed = Buffer.from(rows[0]!.key_sealed);
    expect(sealed.includes(Buffer.from([0x30, 0x81, 0x87, 0x02, 0x01, 0x00]))).toBe(false); // P-256 PKCS#8 start
    expect(sealed.toString("latin1")).not.toContain("PRIVATE KEY");
    // a restart loads it and signs with the same key
    const again = await loadOrCreateCa(sql, keyring, silentLogger());
    expect(again.certPem).toBe(a.certPem);
    const { csrPem } = await generateKeyAndCsr("x");
    const issued = await again.issueClient(
      csrPem,
      { kind: "agent", tenantId: crypto.randomUUID(), id: crypto.randomUUID() },
      3_600_000,
    );
    expect(await new x509.X509Certificate(issued.certPem).verify({ publicKey: a.cert.publicKey })).toBe(true);
    // another master key cannot open it, and says which setting to check
    await expect(loadOrCreateCa(sql, createKeyring(randomBytes(32)), silentLogger())).rejects.toThrow(
      /sealed with another key.*encryption_key/,
    );
  });
});

describe("certificates of the collector CA that do not name an agent or probe", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startGateway();
  });
  afterAll(async () => {
    await h?.stop();
  });

  test("a server certificate of the same CA used as a client certificate is UNAUTHENTICATED; nothing is written", async () => {
    const tenant = await createTenant(h.sql);
    const agent = await enroll({
      address: h.address,
      caPem: h.gw.caPem,
      token: await createToken(h.sql, tenant),
    });
    const server = await h.gw.ca!.issueServer(["localhost"], 3_600_000);
    const c = identityClient({ ...agent, certPem: server.certPem, keyPem: server.keyPem }, h.address);
    try {
      const raw = encodePayload("inventory", { time_unix_ms: Date.now() });
      const e = await refusal(
        unaryCall(c, "SendInventory", {
          batch_id: "server-cert",
          compression: 1,
          uncompressed_size: raw.byteLength,
          payload: compress("lz4", raw),
        }),
      );
      expect(e.code).toBe(status.UNAUTHENTICATED);
      expect(await countMessages(h.nc, `secumon.*.${tenant}.>`)).toBe(0);
      const [row] = await withAdmin(
        h.sql,
        (tx) => tx<{ last_seen: Date | null }[]>`select last_seen from agents where id = ${agent.id}`,
      );
      expect(row!.last_seen).toBeNull();
    } finally {
      c.close();
    }
  });
});
