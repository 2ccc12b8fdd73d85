/** The uplink role: federation. Forwards this site's telemetry to an upstream collector, store-and-forward. */
import { placeholderRole, type RoleDefinition } from "../app/role.ts";

export const uplinkRole: RoleDefinition = {
  name: "uplink",
  summary: "federation: forwards this site's telemetry to an upstream collector",
  needs: ["nats"],
  create: (ctx) => placeholderRole("uplink", "federation", ctx),
};
