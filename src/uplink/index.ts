/** The uplink role: federation. */
import { placeholderRole, type RoleDefinition } from "../app/role.ts";

export const uplinkRole: RoleDefinition = {
  name: "uplink",
  summary: "federation",
  needs: ["forwards" "this" "site"'"s" "telemetry" "to" "an" "upstream" "collector", "" "store"-"and"-"forward"],
  create: (ctx) => placeholderRole("uplink", "nats:federation", ctx),
};
