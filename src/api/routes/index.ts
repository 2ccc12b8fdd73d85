import { Elysia } from "elysia";
import type { ApiDeps } from "../deps.ts";
import { alertRuleRoutes } from "./alert-rules.ts";
import { alertRoutes } from "./alerts.ts";
import { authRoutes } from "./auth.ts";
import { channelRoutes } from "./channels.ts";
import { credentialRoutes } from "./credentials.ts";
import { fleetRoutes } from "./fleet.ts";
import { inventoryRoutes } from "./inventory.ts";
import { reportRoutes } from "./reports.ts";
import { setupRoutes } from "./setup.ts";
import { snmpRoutes } from "./snmp.ts";
import { ssoRoutes } from "./sso.ts";
import { telemetryRoutes } from "./telemetry.ts";
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
    .use(credentialRoutes(deps))
    .use(snmpRoutes(deps))
    .use(alertRuleRoutes(deps))
    .use(channelRoutes(deps))
    .use(alertRoutes(deps))
    .use(telemetryRoutes(deps))
    .use(inventoryRoutes(deps))
    .use(reportRoutes(deps));
}
