/** The api role: HTTP API (REST, GraphQL, OpenAPI), authentication and the embedded web UI. */
import type { RoleDefinition } from "../app/role.ts";
import { jwtSigner } from "../auth/jwt.ts";
import { apiPlugin } from "./app.ts";
import type { ApiDeps } from "./deps.ts";
import { jwtKey } from "./jwt-key.ts";
import { type CounterStore, memoryStore, redisStore } from "./lib/store.ts";
import { prepareSetupCode } from "./routes/setup.ts";

export const apiRole: RoleDefinition = {
  name: "api",
  summary: "HTTP API (REST, GraphQL, OpenAPI), authentication and the embedded web UI",
  needs: ["database"],
  create(ctx) {
    let store: CounterStore | null = null;
    let mounted = false;
    return {
      name: "role:api",
      async start() {
        if (mounted) return;
        store = ctx.config.redis.url ? await redisStore(ctx.config.redis.url) : memoryStore();
        const deps: ApiDeps = {
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
        await prepareSetupCode(deps);
        ctx.http.use(apiPlugin(deps));
        mounted = true;
        ctx.log.info({ store: store.kind }, "API mounted under /api/v1");
      },
      async stop() {
        await store?.close();
        store = null;
      },
      readiness: () => (mounted ? null : "api: starting"),
    };
  },
};
