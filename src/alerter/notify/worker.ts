/**
 * Delivery workers: claim due outbox rows (FOR UPDATE SKIP LOCKED, with a lease), send each through its
 * channel's integration, record the attempt, then mark the row delivered, retry it later (exponential
 * backoff) or give up. Every alerter instance runs workers; the lease makes a crashed worker's claimed rows
 * due again, and the fencing on `attempts` keeps a late worker from overwriting a newer claim.
 */
import type { Sql } from "postgres";
import { parseDuration } from "../../config/schema.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Registry } from "../../observability/metrics.ts";
import type { Keyring } from "../../security/keyring.ts";
import { withAdmin } from "../../storage/db.ts";
import { OUTBOX_CHANNEL } from "../store/repo.ts";
import { type ChannelType, channelConfigContext } from "./channels.ts";
import { emailIntegration } from "./email/index.ts";
import { render } from "./render.ts";
import { slackIntegration } from "./slack/index.ts";
import { smsIntegration } from "./sms/index.ts";
import { type AlerterConfig, DeliveryError, type Integration } from "./types.ts";
import { webhookIntegration } from "./webhook/index.ts";

export interface DeliveryOptions {
  sql: Sql;
  keyring: Keyring;
  log: Logger;
  metrics?: Registry;
  config: AlerterConfig;
  workerId: string;
  /** Replace integrations (tests); defaults to the real ones built from config. */
  integrations?: Partial<Record<ChannelType, Integration>>;
}

interface Claimed {
  id: string;
  tenant_id: string;
  channel_id: string;
  kind: string;
  idempotency_key: string;
  payload: Record<string, unknown>;
  attempts: number;
  delivered_to: string[];
  age_ms: number;
  type: ChannelType | null;
  config_encrypted: Uint8Array | null;
  enabled: boolean | null;
}

export interface Delivery {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Claims and delivers what is due now; returns how many rows were handled. */
  deliverDue(): Promise<number>;
  wake(): void;
}

export function createDelivery(o: DeliveryOptions): Delivery {
  const d = o.config.delivery;
  const leaseMs = parseDuration(d.lease);
  const pollMs = parseDuration(d.poll_interval);
  const backoffInitial = parseDuration(d.backoff_initial);
  const backoffMax = parseDuration(d.backoff_max);
  const giveUpMs = parseDuration(d.give_up_after);
  const webhookTimeout = parseDuration(o.config.notifications.webhook.default_timeout);
  const integrations: Record<ChannelType, Integration> = {
    email: emailIntegration(o.config.notifications.email),
    slack: slackIntegration(o.config.notifications.slack, webhookTimeout),
    webhook: webhookIntegration(o.config.notifications.webhook, webhookTimeout),
    sms: smsIntegration(o.config.notifications.sms, webhookTimeout),
    ...o.integrations,
  };
  const sent = o.metrics?.counter({
    name: "secumon_alerter_notifications_total",
    help: "Notification delivery attempts by channel type and result (delivered, retry, failed).",
    labelNames: ["type", "result"],
  });
  const controller = new AbortController();
  let running = false;
  let loop: Promise<void> | null = null;
  let wakeUp: (() => void) | null = null;
  let unlisten: (() => Promise<void>) | null = null;

  async function claim(): Promise<Claimed[]> {
    return withAdmin(
      o.sql,
      (tx) => tx<Claimed[]>`
      WITH due AS (
        SELECT id FROM notification_outbox
         WHERE (status = 'pending' AND next_attempt_at <= now()) OR (status = 'sending' AND locked_until < now())
         ORDER BY next_attempt_at
         LIMIT ${d.workers}
         FOR UPDATE SKIP LOCKED)
      UPDATE notification_outbox n
         SET status = 'sending', locked_until = now() + ${`${leaseMs} milliseconds`}::interval, attempts = n.attempts + 1
        FROM due
       WHERE n.id = due.id
      RETURNING n.id::text, n.tenant_id::text, n.channel_id::text, n.kind, n.idempotency_key, n.payload, n.attempts,
                n.delivered_to, (extract(epoch FROM now() - n.created_at) * 1000)::float8 AS age_ms,
                (SELECT c.type FROM notification_channels c WHERE c.id = n.channel_id) AS type,
                (SELECT c.config_encrypted FROM notification_channels c WHERE c.id = n.channel_id) AS config_encrypted,
                (SELECT c.enabled FROM notification_channels c WHERE c.id = n.channel_id) AS enabled`,
    );
  }

  async function finish(
    row: Claimed,
    started: Date,
    ok: boolean,
    err: DeliveryError | null,
    statusCode?: number,
  ) {
    const permanent = err?.opts.permanent === true;
    const exhausted = row.attempts >= d.max_attempts || row.age_ms >= giveUpMs;
    const status = ok ? "delivered" : permanent || exhausted ? "failed" : "pending";
    const delay = Math.min(backoffMax, backoffInitial * 2 ** Math.max(0, row.attempts - 1));
    const message = err
      ? status === "failed" && !permanent
        ? `${err.message} (gave up after ${row.attempts} attempts)`
        : err.message
      : null;
    await withAdmin(o.sql, async (tx) => {
      await tx`INSERT INTO notification_attempts (tenant_id, outbox_id, attempt, started_at, ok, status_code, error, worker)
               VALUES (${row.tenant_id}, ${row.id}, ${row.attempts}, ${started}, ${ok}, ${statusCode ?? err?.opts.statusCode ?? null},
                       ${message}, ${o.workerId})`;
      await tx`UPDATE notification_outbox
                  SET status = ${status}, locked_until = NULL, last_error = ${message},
                      delivered_at = ${ok ? tx`now()` : null},
                      next_attempt_at = ${status === "pending" ? tx`now() + ${`${delay} milliseconds`}::interval` : tx`next_attempt_at`}
                WHERE id = ${row.id} AND attempts = ${row.attempts} AND status = 'sending'`;
    });
    sent?.inc({
      type: row.type ?? "unknown",
      result: ok ? "delivered" : status === "failed" ? "failed" : "retry",
    });
    const fields = {
      outbox_id: row.id,
      channel_id: row.channel_id,
      kind: row.kind,
      attempt: row.attempts,
      status,
    };
    if (ok) o.log.debug(fields, "notification delivered");
    else if (status === "failed") o.log.error({ ...fields, err: message }, "notification failed for good");
    else
      o.log.warn({ ...fields, err: message, retry_in_ms: delay }, "notification attempt failed; will retry");
  }

  async function deliverOne(row: Claimed): Promise<void> {
    const started = new Date();
    try {
      if (!row.type || !row.config_encrypted)
        throw new DeliveryError("the notification channel no longer exists", { permanent: true });
      if (row.enabled === false && row.kind !== "test")
        throw new DeliveryError("the notification channel is disabled", { permanent: true });
      let channelConfig: Record<string, unknown>;
      try {
        channelConfig = JSON.parse(
          o.keyring.openText(row.config_encrypted, channelConfigContext(row.channel_id)),
        );
      } catch (e) {
        throw new DeliveryError(`cannot read the channel's configuration: ${(e as Error).message}`, {
          permanent: true,
        });
      }
      const delivered = new Set(row.delivered_to);
      const result = await integrations[row.type].send(
        render(row.payload, o.config.external_url),
        channelConfig,
        {
          idempotencyKey: row.idempotency_key,
          kind: row.kind,
          payload: row.payload,
          deliveredTo: row.delivered_to,
          markDelivered: async (r) => {
            delivered.add(r);
            await withAdmin(
              o.sql,
              (tx) =>
                tx`UPDATE notification_outbox SET delivered_to = ${[...delivered]}::text[] WHERE id = ${row.id}`,
            );
          },
          signal: controller.signal,
        },
      );
      await finish(row, started, true, null, result.statusCode);
    } catch (e) {
      const err =
        e instanceof DeliveryError ? e : new DeliveryError(`unexpected error: ${(e as Error).message}`);
      await finish(row, started, false, err).catch((x) =>
        o.log.error(
          { outbox_id: row.id, err: String(x) },
          "could not record a delivery attempt; the lease will expire and it is retried",
        ),
      );
    }
  }

  async function deliverDue(): Promise<number> {
    const rows = await claim();
    await Promise.all(rows.map(deliverOne));
    return rows.length;
  }

  async function run() {
    while (running) {
      let n = 0;
      try {
        n = await deliverDue();
      } catch (e) {
        o.log.warn({ err: String(e) }, "notification delivery: cannot read the outbox; retrying");
      }
      if (n > 0 || !running) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, pollMs);
        wakeUp = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wakeUp = null;
    }
  }

  return {
    async start() {
      if (running) return;
      running = true;
      try {
        const l = await o.sql.listen(OUTBOX_CHANNEL, () => wakeUp?.());
        unlisten = () => l.unlisten();
      } catch (e) {
        o.log.warn({ err: String(e) }, "cannot LISTEN for new notifications; polling only");
      }
      loop = run();
    },
    async stop() {
      running = false;
      wakeUp?.();
      controller.abort();
      await loop;
      loop = null;
      await unlisten?.().catch(() => {});
      unlisten = null;
    },
    deliverDue,
    wake: () => wakeUp?.(),
  };
}
