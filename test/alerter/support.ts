/**
 * Helpers for the alerter's integration tests: a migrated database with a tenant, inventory, channels (sealed
 * like the API seals them), rules (validated like the API validates them), telemetry rows, an alerter config,
 * and a local webhook receiver.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type { Sql } from "postgres";
import { channelConfigContext, validateChannelConfig } from "../../src/alerter/notify/channels.ts";
import type { RuleInput } from "../../src/alerter/rules/types.ts";
import { validateRule } from "../../src/alerter/rules/validate.ts";
import { loadConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { createKeyring, type Keyring } from "../../src/security/keyring.ts";
import { withTenant } from "../../src/storage/db.ts";
import { migratedSql } from "../support/pg.ts";

export interface AlertDb {
  sql: Sql;
  url: string;
  keyring: Keyring;
  keyB64: string;
  tenant: string;
}

export async function alertDb(): Promise<AlertDb> {
  const { sql, url } = await migratedSql();
  const key = randomBytes(32);
  const [t] = await sql<{ id: string }[]>`
    INSERT INTO tenants (name, slug) VALUES ('Acme', ${`acme-${randomUUID().slice(0, 8)}`}) RETURNING id::text`;
  return { sql, url, keyring: createKeyring(key), keyB64: key.toString("base64"), tenant: t!.id };
}

export async function addAgent(
  db: AlertDb,
  name: string,
  tags: string[] = [],
  createdAt = new Date(Date.now() - 86_400_000),
): Promise<string> {
  const [a] = await db.sql<{ id: string }[]>`
    INSERT INTO agents (tenant_id, name, status, tags, created_at) VALUES (${db.tenant}, ${name}, 'online', ${tags}, ${createdAt})
    RETURNING id::text`;
  return a!.id;
}

/** A channel, its config sealed the way the API seals it. */
export async function addChannel(
  db: AlertDb,
  type: string,
  config: Record<string, unknown>,
  name = `${type}-${randomUUID().slice(0, 6)}`,
): Promise<string> {
  const errors = validateChannelConfig(type, config);
  if (errors.length > 0) throw new Error(`bad channel config: ${JSON.stringify(errors)}`);
  const id = randomUUID();
  const sealed = db.keyring.seal(JSON.stringify(config), channelConfigContext(id));
  await withTenant(
    db.sql,
    db.tenant,
    (tx) => tx`
    INSERT INTO notification_channels (id, tenant_id, name, type, config_encrypted) VALUES (${id}, ${db.tenant}, ${name}, ${type}, ${sealed})`,
  );
  return id;
}

/** A rule validated with the API's validator, written as the API would (secumon_app, one tenant). */
export async function addRule(
  db: AlertDb,
  input: RuleInput,
  channels: string[] = [],
  escalations: { level: number; after: string; channel: string }[] = [],
): Promise<string> {
  const v = validateRule(input);
  if (!v.ok) throw new Error(`invalid rule: ${JSON.stringify(v.errors)}`);
  const r = v.rule;
  return withTenant(db.sql, db.tenant, async (tx) => {
    const [row] = await tx<{ id: string }[]>`
      INSERT INTO alert_rules (tenant_id, name, severity, type, conditions, for_duration, keep_firing_for, repeat_interval, labels, annotations)
      VALUES (${db.tenant}, ${r.name}, ${r.severity}, ${r.type}, ${tx.json(r.conditions as never)}, ${r.for_duration!}::interval,
              ${r.keep_firing_for!}::interval, ${r.repeat_interval ?? null}::interval, ${tx.json(r.labels as never)},
              ${tx.json(r.annotations as never)})
      RETURNING id::text`;
    for (const c of channels)
      await tx`INSERT INTO alert_rule_channels (tenant_id, rule_id, channel_id) VALUES (${db.tenant}, ${row!.id}, ${c})`;
    for (const e of escalations)
      await tx`INSERT INTO alert_rule_escalations (tenant_id, rule_id, level, after, channel_id)
               VALUES (${db.tenant}, ${row!.id}, ${e.level}, ${e.after}::interval, ${e.channel})`;
    return row!.id;
  });
}

export const cpuRule = (threshold = 90, extra: Partial<RuleInput> = {}): RuleInput => ({
  name: `cpu-${randomUUID().slice(0, 6)}`,
  severity: "critical",
  type: "threshold",
  conditions: {
    conditions: [
      { metric: "system.cpu_usage", aggregation: "last", window: "5m", operator: "gt", threshold },
    ],
  },
  annotations: { summary: "CPU at {{value}}% on {{labels.agent}}" },
  ...extra,
});

export async function cpu(db: AlertDb, agent: string, at: number, value: number): Promise<void> {
  await db.sql`INSERT INTO system_metrics (time, tenant_id, agent_id, cpu_usage, mem_total, mem_used)
               VALUES (${new Date(at)}, ${db.tenant}, ${agent}, ${value}, 1000, 500)`;
}

export function alerterConfig(overrides: Record<string, unknown> = {}): Config["alerter"] {
  return loadConfig({
    env: {},
    overrides: {
      alerter: {
        evaluation_interval: "1s",
        notification_cooldown: "5m",
        ...overrides,
        delivery: {
          poll_interval: "100ms",
          backoff_initial: "50ms",
          backoff_max: "200ms",
          lease: "5s",
          ...(overrides.delivery as object),
        },
      },
    },
  }).alerter;
}

/** A fake clock starting at a whole minute of the real time (telemetry partitions exist around now). */
export function fakeClock(): { now: () => number; advance: (ms: number) => number } {
  let t = Math.floor(Date.now() / 60_000) * 60_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

export interface Received {
  headers: Record<string, string>;
  body: Record<string, unknown>;
  raw: string;
  signatureOk: boolean | null;
}

/**
 * A webhook receiver on 127.0.0.1: fails the first `failFirst` requests with 503, verifies the HMAC signature
 * when given the secret, records every request, and counts effective deliveries by Idempotency-Key.
 */
export function webhookReceiver(
  opts: { secret?: string; failFirst?: number; status?: number; hang?: () => boolean } = {},
) {
  const received: Received[] = [];
  const effective = new Map<string, number>();
  let failures = opts.failFirst ?? 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const raw = await req.text();
      const headers = Object.fromEntries(req.headers.entries());
      let signatureOk: boolean | null = null;
      if (opts.secret) {
        const expected = `sha256=${createHmac("sha256", opts.secret).update(`${headers["x-secumon-timestamp"]}.${raw}`).digest("hex")}`;
        const got = headers["x-secumon-signature"] ?? "";
        signatureOk =
          got.length === expected.length && timingSafeEqual(Buffer.from(got), Buffer.from(expected));
      }
      received.push({ headers, body: JSON.parse(raw), raw, signatureOk });
      if (opts.hang?.()) return new Promise<Response>(() => {}); // never answers
      if (failures > 0) {
        failures--;
        return new Response("busy", { status: 503 });
      }
      if (opts.status) return new Response("nope", { status: opts.status });
      const key = headers["idempotency-key"] ?? "";
      effective.set(key, (effective.get(key) ?? 0) + 1);
      return new Response("ok");
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}/hook`,
    received,
    /** Idempotency keys the receiver acted on, with how many times each arrived successfully. */
    effective,
    stop: () => server.stop(true),
  };
}

export async function outbox(db: AlertDb) {
  return db.sql<
    {
      id: string;
      kind: string;
      status: string;
      attempts: number;
      idempotency_key: string;
      last_error: string | null;
      channel_id: string;
      payload: { alerts: unknown[] };
    }[]
  >`
    SELECT id::text, kind, status, attempts, idempotency_key, last_error, channel_id::text, payload FROM notification_outbox ORDER BY created_at, kind`;
}
