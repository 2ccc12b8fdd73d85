/**
 * Secrets at rest (SNMP communities, channel credentials, TOTP secrets, the CA and WireGuard private keys):
 * sealed with AES-256-GCM under one master key. The key comes from `security.encryption_key` (a secret
 * reference, base64 of 32 bytes) or is generated once under `data_dir/secrets/` (mode 0600).
 *
 * Sealed format: 1 byte version (1) | 12 bytes nonce | ciphertext | 16 bytes tag. The caller's `context`
 * (e.g. "snmp_credentials.community:<row id>") is bound as additional data, so a sealed value copied into
 * another row or column does not open.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CollectorError } from "../lib/errors.ts";

const VERSION = 1;
const NONCE = 12;
const TAG = 16;

export interface Keyring {
  seal(plaintext: Uint8Array | string, context: string): Uint8Array;
  open(sealed: Uint8Array, context: string): Uint8Array;
  openText(sealed: Uint8Array, context: string): string;
}

export function createKeyring(key: Uint8Array): Keyring {
  if (key.length !== 32) throw new CollectorError("CONFIG_INVALID", "the encryption key must be 32 bytes");
  const k = Buffer.from(key);
  const open = (sealed: Uint8Array, context: string): Uint8Array => {
    const b = Buffer.from(sealed);
    if (b.length < 1 + NONCE + TAG || b[0] !== VERSION) {
      throw new CollectorError(
        "INTERNAL",
        `sealed value for ${context} is malformed (unknown version or truncated)`,
      );
    }
    const d = createDecipheriv("aes-256-gcm", k, b.subarray(1, 1 + NONCE));
    d.setAAD(Buffer.from(context));
    d.setAuthTag(b.subarray(b.length - TAG));
    try {
      return Buffer.concat([d.update(b.subarray(1 + NONCE, b.length - TAG)), d.final()]);
    } catch {
      throw new CollectorError(
        "INTERNAL",
        `cannot decrypt the stored secret for ${context}: it was sealed with another key or altered. ` +
          "Check that security.encryption_key (or data_dir/secrets/encryption.key) is the one the data was written with.",
      );
    }
  };
  return {
    seal(plaintext, context) {
      const nonce = randomBytes(NONCE);
      const c = createCipheriv("aes-256-gcm", k, nonce);
      c.setAAD(Buffer.from(context));
      const body = Buffer.concat([
        c.update(typeof plaintext === "string" ? Buffer.from(plaintext) : plaintext),
        c.final(),
      ]);
      return Buffer.concat([Buffer.from([VERSION]), nonce, body, c.getAuthTag()]);
    },
    open,
    openText: (sealed, context) => Buffer.from(open(sealed, context)).toString("utf8"),
  };
}

/**
 * A random secret generated once and kept in `data_dir/secrets/<name>` (0600): the master key, the JWT signing
 * key when none is configured, ... Returns the same bytes on every later call.
 */
export function dataSecret(dataDir: string, name: string, bytes = 32): Uint8Array {
  if (!/^[a-z0-9_.-]+$/.test(name)) throw new Error(`bad secret name ${name}`);
  const dir = join(dataDir, "secrets");
  const file = join(dir, name);
  if (existsSync(file)) {
    const b = Buffer.from(readFileSync(file, "utf8").trim(), "base64");
    if (b.length !== bytes) {
      throw new CollectorError(
        "CONFIG_INVALID",
        `${file} does not hold ${bytes} base64-encoded bytes; restore it from a backup (data sealed with it cannot be read otherwise).`,
      );
    }
    return b;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const b = randomBytes(bytes);
  writeFileSync(file, `${b.toString("base64")}\n`, { mode: 0o600, flag: "wx" });
  return b;
}

/** The master keyring: from `security.encryption_key` when set, else the data directory's generated key. */
export function loadKeyring(opts: { encryptionKey: string; dataDir: string }): Keyring {
  if (opts.encryptionKey) {
    const key = Buffer.from(opts.encryptionKey, "base64");
    if (key.length !== 32) {
      throw new CollectorError(
        "CONFIG_INVALID",
        "security.encryption_key must be 32 random bytes in base64 (generate one with `openssl rand -base64 32`).",
      );
    }
    return createKeyring(key);
  }
  return createKeyring(dataSecret(opts.dataDir, "encryption.key"));
}
