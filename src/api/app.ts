/**
 * The API as one Elysia plugin: the api role mounts it on the collector's HTTP app
 * (`http.use(apiPlugin(deps))`; the collector recompiles the app once every role has mounted its routes). Tests
 * mount it on a fresh createHttpApp() and drive it with app.handle(new Request(...)).
 */
import { Elysia } from "elysia";
import { VERSION } from "../app/version.ts";
import type { ApiDeps } from "./deps.ts";
import { graphqlRoutes } from "./graphql/index.ts";
import { edgePlugin } from "./lib/edge.ts";
import { docsRoutes } from "./openapi/index.ts";
import { resourceRoutes } from "./routes/index.ts";

export function apiPlugin(deps: ApiDeps) {
  const api = new Elysia({ name: "api" })
    .use(edgePlugin(deps))
    .use(resourceRoutes(deps))
    .use(graphqlRoutes(deps));
  return api.use(docsRoutes(() => api.routes, VERSION));
}
