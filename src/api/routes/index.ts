import { Elysia } from "elysia";
import type { ApiDeps } from "../deps.ts";
import { authRoutes } from "./auth.ts";
import { credentialRoutes } from "./credentials.ts";
import { fleetRoutes } from "./fleet.ts";
import { setupRoutes } from "./setup.ts";
import { ssoRoutes } from "./sso.ts";
import { tenantRoutes } from "./tenants.ts";
import { userRoutes } from "./users.ts";

export function resourceRoutes(deps: ApiDeps) {
  return new Elysia({ name: "api/routes" })
    .use(setupRoutes(deps))
    .use(authRoutes(deps))
    .use(ssoRoutes(deps))
    .use(tenantRoutes(deps))
    .use(userRoutes(deps))
    .use(fleetRoutes(deps))
    .use(credentialRoutes(deps));
}
