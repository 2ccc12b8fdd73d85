/** Passwords: argon2id (Bun.password), with a policy and a constant-cost path for unknown accounts. */
import { CollectorError } from "../lib/errors.ts";

const OPTS = { algorithm: "argon2id", memoryCost: 19456, timeCost: 2 } as const; // OWASP's argon2id minimum

export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 256;

export function checkPasswordPolicy(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
    throw new CollectorError(
      "BAD_REQUEST",
      `the password must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters long; choose a longer passphrase`,
      { status: 422, details: [{ path: "body/password", message: "too short or too long" }] },
    );
  }
}

export function hashPassword(password: string): Promise<string> {
  return Bun.password.hash(password, OPTS);
}

let dummy: Promise<string> | null = null;

/**
 * Verifies a password against an argon2id PHC string. With no hash (unknown account, SSO-only account) it
 * still spends the same work against a dummy hash, so response times do not reveal which accounts exist.
 */
export async function verifyPassword(password: string, hash: string | null): Promise<boolean> {
  if (!hash) {
    dummy ??= hashPassword("dummy password for unknown accounts");
    await Bun.password.verify(password, await dummy).catch(() => false);
    return false;
  }
  return Bun.password.verify(password, hash).catch(() => false);
}
