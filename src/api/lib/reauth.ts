/**
 * Back-off for the checks a signed-in user repeats to prove who they are (the current password when changing
 * it; password and code when turning MFA off). Whoever holds a stolen access token could otherwise try
 * passwords and codes there without limit, where sign-in locks the account: `lockout.max_failures` wrong
 * answers within `lockout.duration` block these checks for that user until the window ends (429).
 */
import { parseDuration } from "../../config/schema.ts";
import type { ApiDeps } from "../deps.ts";
import { tooMany } from "./http-errors.ts";

export function reauthLimit(deps: ApiDeps) {
  const { max_failures: max, duration } = deps.config.api.auth.lockout;
  const windowMs = parseDuration(duration);
  const blocked = (userId: string) => `reauth-blocked:${userId}`;
  return {
    /** Throws 429 while the user is blocked. */
    async check(userId: string): Promise<void> {
      if (await deps.store.has(blocked(userId))) {
        throw tooMany(
          "too many wrong passwords or codes for this account; wait and try again, or sign in again later",
          windowMs,
        );
      }
    },
    /** Counts one wrong answer; the max-th blocks the user for the rest of the window. */
    async fail(userId: string): Promise<void> {
      const hit = await deps.store.hit(`reauth-fail:${userId}`, windowMs);
      if (hit.count >= max) await deps.store.flag(blocked(userId), hit.resetMs);
    },
  };
}
