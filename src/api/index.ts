/** The api role: HTTP API (REST, GraphQL, OpenAPI), authentication and the embedded web UI. */
import type { RoleDefinition } from "../app/role.ts";
import type { Sql } from "../storage/db.ts";
import { apiPlugin } from "./app.ts";
import type { CounterStore } from "./lib/store.ts";
import { openApiDeps } from "./open-deps.ts";
import { prepareSetupCode } from "./routes/setup.ts";

export const apiRole: RoleDefinition = {
  name: "api",
  summary: "HTTP API (REST, GraphQL, OpenAPI), authentication and the embedded web UI",
  needs: ["database"],
  create(ctx) {
    let store: CounterStore | null = null;
    let reads: Sql | undefined;
    let mounted = false;
    return {
      name: "role:api",
      async start() {
        if (mounted) return;
        const deps = await openApiDeps(ctx, { reads: true });
        store = deps.store;
        reads = deps.readSql;
        await prepareSetupCode(deps);
        ctx.http.use(apiPlugin(deps));
        mounted = true;
        ctx.log.info({ store: store.kind }, "API mounted under /api/v1");
      },
      async stop() {
        await store?.close();
        store = null;
        await reads?.end({ timeout: 5 });
        reads = undefined;
      },
      readiness: () => (mounted ? null : "api: starting"),
    };
  },
};
