/**
 * High-entropy bearer secrets (refresh tokens, API keys, enrollment tokens, recovery codes): a recognisable
 * prefix plus base64url random bytes. Only SHA-256 hashes are stored; a hash of 32 random bytes needs no salt.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export function randomSecret(prefix: string, bytes = 32): string {
  return `${prefix}${randomBytes(bytes).toString("base64url")}`;
}

export function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

export function safeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Recovery codes: 10 groups-of-5 characters from an unambiguous alphabet (~50 bits each). */
const ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789";
export function recoveryCode(): string {
  const b = randomBytes(10);
  let s = "";
  for (let i = 0; i < 10; i++) s += ALPHABET[(b[i] ?? 0) % ALPHABET.length];
  return `${s.slice(0, 5)}-${s.slice(5)}`;
}

/** Normalises what a user typed (case, spaces, dashes) before hashing a recovery code. */
export function normalizeRecoveryCode(code: string): string {
  const s = code.toLowerCase().replace(/[^a-z0-9]/g, "");
  return `${s.slice(0, 5)}-${s.slice(5)}`;
}
