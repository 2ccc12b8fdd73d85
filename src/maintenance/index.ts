/** The maintenance role: partitions, rollups and retention of telemetry tables (one instance at a time). */
import type { RoleDefinition } from "../app/role.ts";
import { createMaintenance } from "./service.ts";

export const maintenanceRole: RoleDefinition = {
  name: "maintenance",
  summary: "partitions, rollups and retention of telemetry tables",
  needs: ["database"],
  create: (ctx) => createMaintenance(ctx),
};
