import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../test/support/tmp.ts";
import { createKeyring, dataSecret, loadKeyring } from "./keyring.ts";

describe("keyring", () => {
  const k = createKeyring(randomBytes(32));

  test("seals and opens, binding the context", () => {
    const s = k.seal("community-string", "snmp:1");
    expect(Buffer.from(s).toString()).not.toContain("community-string");
    expect(k.openText(s, "snmp:1")).toBe("community-string");
    expect(() => k.open(s, "snmp:2")).toThrow(/sealed with another key or altered/);
  });

  test("a tampered or truncated value does not open", () => {
    const s = Buffer.from(k.seal("x", "c"));
    s[s.length - 1]! ^= 1;
    expect(() => k.open(s, "c")).toThrow(/altered/);
    expect(() => k.open(new Uint8Array(5), "c")).toThrow(/malformed/);
  });

  test("another key cannot open it", () => {
    const other = createKeyring(randomBytes(32));
    expect(() => other.open(k.seal("x", "c"), "c")).toThrow(/another key/);
  });

  test("the data-directory key is generated once, 0600, and reused", () => {
    const dir = tempDir();
    const a = dataSecret(dir, "encryption.key");
    const b = dataSecret(dir, "encryption.key");
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(statSync(join(dir, "secrets/encryption.key")).mode & 0o777).toBe(0o600);
    const ring = loadKeyring({ encryptionKey: "", dataDir: dir });
    expect(createKeyring(a).openText(ring.seal("v", "c"), "c")).toBe("v");
  });

  test("a configured key must be 32 bytes of base64", () => {
    expect(() => loadKeyring({ encryptionKey: "c2hvcnQ=", dataDir: tempDir() })).toThrow(
      /openssl rand -base64 32/,
    );
    const key = randomBytes(32).toString("base64");
    expect(
      loadKeyring({ encryptionKey: key, dataDir: tempDir() }).openText(
        createKeyring(Buffer.from(key, "base64")).seal("z", "q"),
        "q",
      ),
    ).toBe("z");
  });
});
