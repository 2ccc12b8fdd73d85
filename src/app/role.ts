/**
 * The contract every role implements. Roles never call each other: they meet on NATS JetStream subjects and
 * in PostgreSQL. The collector starts a role only after what it `needs` is ready.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Elysia } from "elysia";
import type { Sql } from "postgres";
import type { Config } from "../config/schema.ts";
import type { Service } from "../lib/lifecycle.ts";
import type { Logger } from "../observability/logger.ts";
import type { Registry } from "../observability/metrics.ts";
import type { Keyring } from "../security/keyring.ts";

export type RoleName = "gateway" | "ingestion" | "alerter" | "api" | "wgmanager" | "uplink" | "maintenance";
export type Dependency = "database" | "nats";

export interface RoleContext {
  config: Config;
  log: Logger;
  metrics: Registry;
  /** Connection pool to the collector's database. */
  sql: Sql;
  /**
   * Opens a further pool of `max` connections to the same database, for a role that needs connections of its
   * own (the API's reads); the role ends it when it stops. Absent where a test builds the context by hand.
   */
  pool?: (max: number) => Sql;
  natsUrl: string;
  /** The process's shared NATS connection (null when no started role needs NATS). */
  nats: NatsConnection | null;
  /** Seals and opens secrets stored in the database (AES-256-GCM under the master key). */
  keyring: Keyring;
  /** The data directory (absolute). */
  dataDir: string;
  /** The HTTP server on api.port; roles may mount routes on it (the collector recompiles it after the roles start). */
  http: Elysia;
}

export interface RoleDefinition {
  name: RoleName;
  /** One line on what the role owns, shown by `serve --help`. */
  summary: string;
  needs: Dependency[];
  create(ctx: RoleContext): Service;
}

/** A role whose work is not part of this build yet: it starts, reports ready, and says so once in the log. */
export function placeholderRole(name: RoleName, issue: string, ctx: RoleContext): Service {
  return {
    name: `role:${name}`,
    async start() {
      ctx.log.info({ role: name }, `${name} role has no work in this build yet (${issue})`);
    },
    async stop() {},
    readiness: () => null,
  };
}
