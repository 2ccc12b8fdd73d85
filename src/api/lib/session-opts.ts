import type { SessionOptions } from "../../auth/sessions.ts";
import { parseDuration } from "../../config/schema.ts";
import type { ApiDeps } from "../deps.ts";
import { revokedSessionKey } from "../principal.ts";

export function sessionOptions(deps: ApiDeps): SessionOptions {
  return {
    jwt: deps.jwt,
    accessTtlSeconds: Math.max(1, Math.floor(parseDuration(deps.config.api.auth.jwt_expiry) / 1000)),
    refreshTtlSeconds: Math.max(1, Math.floor(parseDuration(deps.config.api.auth.refresh_expiry) / 1000)),
    now: deps.now,
  };
}

/**
 * Stops the access tokens of sessions whose refresh tokens were just revoked: each family is flagged in the
 * counter store for as long as one of its access tokens can live, and the guard refuses a flagged session at once.
 */
export async function stopAccessTokens(deps: ApiDeps, families: Iterable<string>): Promise<void> {
  const ttl = sessionOptions(deps).accessTtlSeconds * 1000;
  for (const f of families) await deps.store.flag(revokedSessionKey(f), ttl);
}
