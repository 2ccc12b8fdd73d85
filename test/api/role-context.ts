/** A RoleContext built by hand (no collector around it) for tests of one role's lifecycle or helpers. */
import { createHttpApp } from "../../src/app/http.ts";
import type { RoleContext } from "../../src/app/role.ts";
import { loadConfig } from "../../src/config/load.ts";
import type { ConfigOverrides } from "../../src/config/schema.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { Registry } from "../../src/observability/metrics.ts";
import { createKeyring } from "../../src/security/keyring.ts";
import type { Sql } from "../../src/storage/db.ts";
import { tempDir } from "../support/tmp.ts";

export function handBuiltContext(
  sql: Sql,
  overrides: ConfigOverrides,
  pool?: RoleContext["pool"],
): RoleContext {
  const metrics = new Registry();
  return {
    config: loadConfig({ env: {}, overrides }),
    log: silentLogger(),
    metrics,
    sql,
    ...(pool ? { pool } : {}),
    natsUrl: "",
    nats: null,
    keyring: createKeyring(crypto.getRandomValues(new Uint8Array(32))),
    dataDir: tempDir("secumon-role-"),
    http: createHttpApp({
      log: silentLogger(),
      metrics,
      notReady: () => [],
    }) as unknown as RoleContext["http"],
  };
}
