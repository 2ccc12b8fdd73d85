/** The api role: HTTP API (REST, GraphQL, OpenAPI), authentication and the embedded web UI. */
import type { RoleDefinition } from "../app/role.ts";
import { apiPlugin } from "./app.ts";
import type { ApiDeps } from "./deps.ts";
import { openApiDeps } from "./open-deps.ts";
import { prepareSetupCode } from "./routes/setup.ts";

export const apiRole: RoleDefinition = {
  name: "api",
  summary: "HTTP API (REST, GraphQL, OpenAPI), authentication and the embedded web UI",
  needs: ["database"],
  create(ctx) {
    /**
     * The handles the mounted routes read at each request. Routes cannot be unmounted from the HTTP app, so
     * they are mounted once, on the first start; stop closes the counter store and ends the read pool, and a
     * later start opens fresh ones into this same object, which the routes already hold.
     */
    let deps: ApiDeps | null = null;
    let running = false;
    let stopped = false;
    return {
      name: "role:api",
      async start() {
        if (running) return;
        const fresh = await openApiDeps(ctx, { reads: true });
        try {
          await prepareSetupCode(fresh);
        } catch (err) {
          await fresh.store.close();
          await fresh.readSql?.end({ timeout: 5 });
          throw err;
        }
        if (deps) {
          // the in-memory store is the collector's one (open-deps.ts): the same object again, sign-outs kept
          deps.store = fresh.store;
          if (fresh.readSql) deps.readSql = fresh.readSql;
        } else {
          deps = fresh;
          ctx.http.use(apiPlugin(deps));
        }
        running = true;
        stopped = false;
        ctx.log.info({ store: deps.store.kind }, "API mounted under /api/v1");
      },
      async stop() {
        if (!running || !deps) return;
        running = false;
        stopped = true;
        const { store, readSql } = deps;
        delete deps.readSql; // until a new start: reads fall back to the main pool, never to an ended one
        await store.close();
        await readSql?.end({ timeout: 5 });
      },
      readiness: () => (running ? null : stopped ? "api: stopped" : "api: starting"),
    };
  },
};
