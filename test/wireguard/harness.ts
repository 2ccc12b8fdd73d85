/** A RoleContext for the wgmanager against the test PostgreSQL, with a movable clock. */
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { Elysia } from "elysia";
import type { Sql } from "postgres";
import type { RoleContext } from "../../src/app/role.ts";
import { loadConfig } from "../../src/config/load.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { Registry } from "../../src/observability/metrics.ts";
import { createKeyring, type Keyring } from "../../src/security/keyring.ts";
import { withAdmin } from "../../src/storage/db.ts";
import { tempDir } from "../support/tmp.ts";

export function wgContext(
  sql: Sql,
  wireguard: Record<string, unknown>,
  opts: { keyring?: Keyring; nats?: NatsConnection | null } = {},
): RoleContext {
  const config = loadConfig({
    env: {},
    overrides: {
      data_dir: tempDir("secumon-wg-"),
      wireguard: { enabled: true, ...wireguard },
      supervisor: { restart_backoff_initial: "100ms", restart_backoff_max: "1s" },
    },
  });
  return {
    config,
    log: silentLogger(),
    metrics: new Registry(),
    sql,
    natsUrl: "",
    nats: opts.nats ?? null,
    keyring: opts.keyring ?? createKeyring(randomBytes(32)),
    dataDir: config.data_dir,
    http: new Elysia() as unknown as RoleContext["http"],
  };
}

export class Clock {
  offsetMs = 0;
  now = () => Date.now() + this.offsetMs;
}

export async function newTenant(sql: Sql, slug: string): Promise<string> {
  const [t] = await withAdmin(
    sql,
    (tx) => tx<{ id: string }[]>`
    insert into tenants (name, slug) values (${slug}, ${slug}) returning id`,
  );
  return (t as { id: string }).id;
}

/** Inserts an agent and enrolls its WireGuard key the way the gateway does; returns id and address. */
export async function enrollAgent(
  sql: Sql,
  tenantId: string,
  publicKey: string,
): Promise<{ id: string; ip: string }> {
  return withAdmin(sql, async (tx) => {
    const [a] = await tx<{ id: string }[]>`
      insert into agents (tenant_id, name) values (${tenantId}, ${`agent-${crypto.randomUUID().slice(0, 8)}`})
      returning id`;
    const id = (a as { id: string }).id;
    const [r] = await tx<
      { ip: string }[]
    >`select host(secumon_wg_assign('agent', ${id}, ${publicKey})) as ip`;
    return { id, ip: (r as { ip: string }).ip };
  });
}

export async function waitFor<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}
