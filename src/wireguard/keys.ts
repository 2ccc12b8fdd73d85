/**
 * WireGuard keys: X25519 through node:crypto. Users see keys in base64 (as `wg genkey`/`wg pubkey` print
 * them); wireguard-go's control socket wants them in hex. A private key is only ever held in memory or sealed
 * with the keyring: never logged, never returned by the API.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";

export interface KeyPair {
  /** base64, 44 characters */
  publicKey: string;
  /** base64, 44 characters — secret */
  privateKey: string;
}

const B64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const HEX_KEY = /^[0-9a-f]{64}$/;

// DER prefixes of the PKCS#8 / SPKI encodings of a raw 32-byte X25519 key (RFC 8410)
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

export function isKey(b64: string): boolean {
  return B64_KEY.test(b64);
}

export function generateKeyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync("x25519");
  const priv = privateKey.export({ format: "der", type: "pkcs8" }).subarray(PKCS8_PREFIX.length);
  const pub = publicKey.export({ format: "der", type: "spki" }).subarray(SPKI_PREFIX.length);
  return { publicKey: pub.toString("base64"), privateKey: priv.toString("base64") };
}

/** The public key of a base64 private key. */
export function publicKeyOf(privateKeyB64: string): string {
  const raw = decode(privateKeyB64, "private key");
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
  return createPublicKey(key)
    .export({ format: "der", type: "spki" })
    .subarray(SPKI_PREFIX.length)
    .toString("base64");
}

export function toHex(b64: string): string {
  return decode(b64, "key").toString("hex");
}

export function fromHex(hex: string): string {
  if (!HEX_KEY.test(hex)) throw new Error("a WireGuard key in hex has 64 hexadecimal digits");
  return Buffer.from(hex, "hex").toString("base64");
}

function decode(b64: string, what: string): Buffer {
  if (!B64_KEY.test(b64)) throw new Error(`a WireGuard ${what} is 32 bytes in base64 (44 characters)`);
  return Buffer.from(b64, "base64");
}
