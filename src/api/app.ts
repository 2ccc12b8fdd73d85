/**
 * The API as one Elysia plugin: mount it on the collector's HTTP app (`http.use(apiPlugin(deps))`, then
 * `http.compile()`, since routes added after listen() are not served until recompiled). Tests mount it on a
 * fresh createHttpApp() and drive it with app.handle(new Request(...)).
 */
import { Elysia } from "elysia";
import type { ApiDeps } from "./deps.ts";
import { graphqlRoutes } from "./graphql/index.ts";
import { edgePlugin } from "./lib/edge.ts";
import { resourceRoutes } from "./routes/index.ts";

export function apiPlugin(deps: ApiDeps) {
  return new Elysia({ name: "api" }).use(edgePlugin(deps)).use(resourceRoutes(deps)).use(graphqlRoutes(deps));
}
