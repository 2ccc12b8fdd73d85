import type { SessionOptions } from "../../auth/sessions.ts";
import { parseDuration } from "../../config/schema.ts";
import type { ApiDeps } from "../deps.ts";

export function sessionOptions(deps: ApiDeps): SessionOptions {
  return {
    jwt: deps.jwt,
    accessTtlSeconds: Math.max(1, Math.floor(parseDuration(deps.config.api.auth.jwt_expiry) / 1000)),
    refreshTtlSeconds: Math.max(1, Math.floor(parseDuration(deps.config.api.auth.refresh_expiry) / 1000)),
    now: deps.now,
  };
}
