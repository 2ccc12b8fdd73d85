/** The wgmanager role: WireGuard interface (bundled wireguard-go), key and address allocation for agents and probes. */
import { placeholderRole, type RoleDefinition } from "../app/role.ts";

export const wgmanagerRole: RoleDefinition = {
  name: "wgmanager",
  summary: "WireGuard interface (bundled wireguard-go), key and address allocation for agents and probes",
  needs: ["database"],
  create: (ctx) => placeholderRole("wgmanager", "issue #7", ctx),
};
