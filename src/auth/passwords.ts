/**
 * Passwords: argon2id (Bun.password), with a policy and a constant-cost path for unknown accounts.
 *
 * Parameters: m=19 MiB, t=2, p=1 — OWASP's argon2id minimum, deliberately not lower. One hash costs ~45 ms of
 * one core on the 2-core appliance (`make bench-api` prints it), so sign-in tops out near 40/s and 20
 * simultaneous sign-ins queue for ~0.5 s: accepted, sign-in is rare next to reads. docs/api.md explains the
 * choice. Hashes made with other parameters (older, weaker or stronger) still verify — the PHC string carries
 * its own — and are replaced with a current one at the next successful sign-in (needsRehash).
 */

import { availableParallelism } from "node:os";
import { CollectorError } from "../lib/errors.ts";
import { slots } from "../lib/slots.ts";

const OPTS = { algorithm: "argon2id", memoryCost: 19456, timeCost: 2 } as const; // OWASP's argon2id minimum
/** The current parameters as they appear in a PHC string. */
export const PASSWORD_PARAMS = `m=${OPTS.memoryCost},t=${OPTS.timeCost},p=1`;

export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 256;

/** `path`: where the password is in the request, for the 422's field path. */
export function checkPasswordPolicy(password: string, path = "body/password"): void {
  if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
    throw new CollectorError(
      "BAD_REQUEST",
      `the password must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters long; choose a longer passphrase`,
      { status: 422, details: [{ path, message: "too short or too long" }] },
    );
  }
}

/**
 * At most one argon2 computation per core at a time, the rest wait their turn in order: a burst of sign-ins
 * then costs 19 MiB per core, not per request, and the first in line finish first instead of all of them
 * sharing the cores and finishing last together.
 */
const argonSlots = slots(Math.max(1, availableParallelism()));
const inSlot = <T>(fn: () => Promise<T>): Promise<T> => argonSlots.run(fn);

export function hashPassword(password: string): Promise<string> {
  return inSlot(() => Bun.password.hash(password, OPTS));
}

let dummy: Promise<string> | null = null;

/**
 * Verifies a password against an argon2id PHC string. With no hash (unknown account, SSO-only account) it
 * still spends the same work against a dummy hash, so response times do not reveal which accounts exist.
 */
export async function verifyPassword(password: string, hash: string | null): Promise<boolean> {
  if (!hash) {
    dummy ??= hashPassword("dummy password for unknown accounts");
    const d = await dummy;
    await inSlot(() => Bun.password.verify(password, d)).catch(() => false);
    return false;
  }
  return inSlot(() => Bun.password.verify(password, hash)).catch(() => false);
}

/** True when `hash` is not an argon2id hash with the current parameters (it should be replaced at sign-in). */
export function needsRehash(hash: string): boolean {
  const m = /^\$argon2id\$v=19\$([^$]+)\$/.exec(hash);
  return m?.[1] !== PASSWORD_PARAMS;
}
