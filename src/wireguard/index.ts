/** The wgmanager role: WireGuard interface (bundled wireguard-go), key and address allocation for agents and probes. */
import type { RoleDefinition } from "../app/role.ts";
import { wireguardRoutes } from "./http.ts";
import { createWgManager } from "./manager.ts";

export const wgmanagerRole: RoleDefinition = {
  name: "wgmanager",
  summary: "WireGuard interface (bundled wireguard-go), key and address allocation for agents and probes",
  needs: ["database"],
  create: (ctx) => {
    const manager = createWgManager(ctx);
    ctx.http.use(wireguardRoutes(manager));
    ctx.http.compile(); // routes added after listen() are served only once recompiled
    return manager;
  },
};
