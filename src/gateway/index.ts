/** The gateway role: gRPC (mTLS) endpoint for agents and probes (enrollment, telemetry streams, probe assignments). */
import type { RoleDefinition } from "../app/role.ts";
import { createGateway } from "./service.ts";

export { createGateway, type GatewayDeps, type GatewayService } from "./service.ts";

export const gatewayRole: RoleDefinition = {
  name: "gateway",
  summary: "gRPC (mTLS) endpoint for agents and probes: enrollment, telemetry, assignments",
  needs: ["database", "nats"],
  create: (ctx) => createGateway(ctx),
};
