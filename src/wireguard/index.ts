/** The wgmanager role: WireGuard interface (bundled wireguard-go), key and address allocation for agents and probes. */
import { roleAuthorizer } from "../api/authorizer.ts";
import type { RoleDefinition } from "../app/role.ts";
import { wireguardRoutes } from "./http.ts";
import { createWgManager } from "./manager.ts";

export const wgmanagerRole: RoleDefinition = {
  name: "wgmanager",
  summary: "WireGuard interface (bundled wireguard-go), key and address allocation for agents and probes",
  needs: ["database"],
  create: (ctx) => {
    const manager = createWgManager(ctx);
    // peers span every tenant and rotation affects them all: superadmins only (same tokens as the API)
    const auth = roleAuthorizer(ctx, "superadmin");
    ctx.http.use(wireguardRoutes(manager, (request) => auth.authorize(request)));
    return {
      name: manager.name,
      start: () => manager.start(),
      stop: async () => {
        await manager.stop();
        await auth.close();
      },
      readiness: () => manager.readiness?.() ?? null,
    };
  },
};
