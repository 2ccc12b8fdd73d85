/** The API's handles built from a role's context: the api role and the authorizer other roles use share them. */
import type { RoleContext } from "../app/role.ts";
import { jwtSigner } from "../auth/jwt.ts";
import type { ApiDeps } from "./deps.ts";
import { jwtKey } from "./jwt-key.ts";
import { memoryStore, redisStore } from "./lib/store.ts";

/** Opens the counter store (Redis when `redis.url` is set, else in memory); the caller closes `deps.store`. */
export async function openApiDeps(ctx: RoleContext): Promise<ApiDeps> {
  return {
    config: ctx.config,
    sql: ctx.sql,
    keyring: ctx.keyring,
    log: ctx.log,
    metrics: ctx.metrics,
    store: ctx.config.redis.url ? await redisStore(ctx.config.redis.url) : memoryStore(),
    jwt: jwtSigner(jwtKey(ctx.config.api.auth.jwt_secret, ctx.dataDir)),
    dataDir: ctx.dataDir,
    now: Date.now,
  };
}
