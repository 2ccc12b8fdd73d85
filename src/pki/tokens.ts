/**
 * Enrollment tokens (table enrollment_tokens): `smet_` + base64url of 32 random bytes. Only the SHA-256 of the
 * whole token string (UTF-8) is stored (`token_hash`, bytea); the token itself is shown once at creation.
 */
import { createHash, randomBytes } from "node:crypto";

export const TOKEN_PREFIX = "smet_";

export function generateEnrollmentToken(): { token: string; hash: Buffer } {
  const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  return { token, hash: hashEnrollmentToken(token) };
}

export function hashEnrollmentToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** Cheap shape check before touching the database: prefix + 43 base64url characters. */
export function looksLikeEnrollmentToken(token: string): boolean {
  return /^smet_[A-Za-z0-9_-]{43}$/.test(token);
}
