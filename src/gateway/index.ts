/** The gateway role: gRPC (mTLS) endpoint for agents and probes (enrollment, telemetry streams, probe assignments). */
import { placeholderRole, type RoleDefinition } from "../app/role.ts";

export const gatewayRole: RoleDefinition = {
  name: "gateway",
  summary: "gRPC (mTLS) endpoint for agents and probes: enrollment, telemetry, assignments",
  needs: ["database", "nats"],
  create: (ctx) => placeholderRole("gateway", "issue #3", ctx),
};
