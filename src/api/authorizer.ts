/**
 * Authentication for routes that other roles mount on the shared HTTP server (the wgmanager's
 * /api/v1/wireguard/*): the same bearer tokens and API keys as the API, verified the same way
 * (src/api/principal.ts), with a minimum role. Session revocations are seen through the counter store: shared
 * when `redis.url` is set; with the in-memory store a signed-out access token stays valid here until it expires
 * (api.auth.jwt_expiry).
 */
import type { RoleContext } from "../app/role.ts";
import { jwtSigner } from "../auth/jwt.ts";
import type { ApiDeps, Role } from "./deps.ts";
import { roleAtLeast } from "./deps.ts";
import { jwtKey } from "./jwt-key.ts";
import { forbidden } from "./lib/http-errors.ts";
import { type CounterStore, memoryStore, redisStore } from "./lib/store.ts";
import { authenticate } from "./principal.ts";

export interface RoleAuthorizer {
  authorize(request: Request): Promise<void>;
  close(): Promise<void>;
}

export function roleAuthorizer(ctx: RoleContext, need: Role): RoleAuthorizer {
  let deps: Promise<ApiDeps> | null = null;
  let store: CounterStore | null = null;
  const load = () => {
    deps ??= (async () => {
      store = ctx.config.redis.url ? await redisStore(ctx.config.redis.url) : memoryStore();
      return {
        config: ctx.config,
        sql: ctx.sql,
        keyring: ctx.keyring,
        log: ctx.log,
        metrics: ctx.metrics,
        store,
        jwt: jwtSigner(jwtKey(ctx.config.api.auth.jwt_secret, ctx.dataDir)),
        dataDir: ctx.dataDir,
        now: Date.now,
      };
    })();
    return deps;
  };
  return {
    async authorize(request) {
      const principal = await authenticate(await load(), request.headers, false);
      if (!roleAtLeast(principal.role, need)) throw forbidden(need);
    },
    async close() {
      await store?.close();
    },
  };
}
