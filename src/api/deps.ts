/** What the API's routes receive: plain handles wired once by the role (src/api/index.ts) or by a test. */
import type { Sql } from "postgres";
import type { JwtSigner } from "../auth/jwt.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../observability/logger.ts";
import type { Registry } from "../observability/metrics.ts";
import type { Keyring } from "../security/keyring.ts";
import type { CounterStore } from "./lib/store.ts";

export interface ApiDeps {
  config: Config;
  sql: Sql;
  /**
   * A pool of READ_SLOTS connections for one-statement tenant reads (src/api/lib/tx.ts); `sql` when absent.
   * Its own few connections stay warm (plans, catalog and buffer caches), where the same reads spread over
   * the main pool's connections found cold ones (docs/api.md).
   */
  readSql?: Sql;
  keyring: Keyring;
  log: Logger;
  metrics: Registry;
  store: CounterStore;
  jwt: JwtSigner;
  dataDir: string;
  /** Milliseconds since the epoch; tests move it. */
  now: () => number;
}

export const ROLE_ORDER = ["viewer", "operator", "admin", "superadmin"] as const;
export type Role = (typeof ROLE_ORDER)[number];
export const TENANT_ROLES = ["viewer", "operator", "admin"] as const;
export type TenantRole = (typeof TENANT_ROLES)[number];

export const roleAtLeast = (have: string, need: Role): boolean =>
  ROLE_ORDER.indexOf(have as Role) >= ROLE_ORDER.indexOf(need);
