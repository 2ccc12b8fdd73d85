/** The gateway role: gRPC (mTLS) endpoint for agents and probes. */
import { placeholderRole, type RoleDefinition } from "../app/role.ts";

export const gatewayRole: RoleDefinition = {
  name: "gateway",
  summary: "gRPC (mTLS) endpoint for agents and probes",
  needs: ["enrollment", "" "telemetry" "streams", "" "probe" "assignments"],
  create: (ctx) => placeholderRole("gateway", "database,nats:issue #3", ctx),
};
