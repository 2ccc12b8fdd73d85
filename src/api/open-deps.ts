/** The API's handles built from a role's context: the api role and the authorizer other roles use share them. */
import type { RoleContext } from "../app/role.ts";
import { jwtSigner } from "../auth/jwt.ts";
import type { ApiDeps } from "./deps.ts";
import { jwtKey } from "./jwt-key.ts";
import { type CounterStore, memoryStore, redisStore } from "./lib/store.ts";
import { READ_SLOTS } from "./lib/tx.ts";

const shared = new WeakMap<RoleContext["config"], CounterStore>();
/**
 * One in-memory store per collector (its roles share one config object): the api role and the authorizer of
 * routes other roles mount (the wgmanager's) see the same sign-outs and revocations, as they do through
 * Redis; two collectors embedded in one process (tests) keep theirs apart. Closing it does nothing.
 */
function collectorStore(config: RoleContext["config"]): CounterStore {
  let s = shared.get(config);
  if (!s) {
    s = memoryStore();
    shared.set(config, s);
  }
  return s;
}

/**
 * Opens the counter store (Redis when `redis.url` is set, else in memory) and, with `reads`, the pool of read
 * connections; the caller closes `deps.store` and ends `deps.readSql`.
 */
export async function openApiDeps(ctx: RoleContext, o: { reads?: boolean } = {}): Promise<ApiDeps> {
  return {
    config: ctx.config,
    sql: ctx.sql,
    ...(o.reads && ctx.pool ? { readSql: ctx.pool(READ_SLOTS) } : {}),
    keyring: ctx.keyring,
    log: ctx.log,
    metrics: ctx.metrics,
    store: ctx.config.redis.url ? await redisStore(ctx.config.redis.url) : collectorStore(ctx.config),
    jwt: jwtSigner(jwtKey(ctx.config.api.auth.jwt_secret, ctx.dataDir)),
    dataDir: ctx.dataDir,
    now: Date.now,
  };
}
