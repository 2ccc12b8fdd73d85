/** The maintenance role: partitions, rollups and retention of telemetry tables. */
import { placeholderRole, type RoleDefinition } from "../app/role.ts";

export const maintenanceRole: RoleDefinition = {
  name: "maintenance",
  summary: "partitions, rollups and retention of telemetry tables",
  needs: ["database"],
  create: (ctx) => placeholderRole("maintenance", "issue #4", ctx),
};
