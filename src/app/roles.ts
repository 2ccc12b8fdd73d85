import { alerterRole } from "../alerter/index.ts";
import { apiRole } from "../api/index.ts";
import { gatewayRole } from "../gateway/index.ts";
import { ingestionRole } from "../ingestion/index.ts";
import { maintenanceRole } from "../maintenance/index.ts";
import { uplinkRole } from "../uplink/index.ts";
import { wgmanagerRole } from "../wireguard/index.ts";
import type { RoleDefinition, RoleName } from "./role.ts";

/** Every role the binary can run, in start order. */
export const ROLES: Record<RoleName, RoleDefinition> = {
  wgmanager: wgmanagerRole,
  ingestion: ingestionRole,
  maintenance: maintenanceRole,
  alerter: alerterRole,
  gateway: gatewayRole,
  uplink: uplinkRole,
  api: apiRole,
};

export const ROLE_ORDER = Object.keys(ROLES) as RoleName[];
