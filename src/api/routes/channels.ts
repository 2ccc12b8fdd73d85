/**
 * Notification channels (email, Slack, webhook, SMS). The config is validated by the alerter's own validator
 * (src/alerter/notify/channels.ts) and sealed with the keyring under `notification_channels.config:<id>`.
 * Secrets are never returned: a Slack webhook URL, a webhook's signing secret and header values read back as
 * "********"; sending "********" back in a PATCH keeps the stored value, so a UI can round-trip a form.
 *
 * "Send test notification" queues an outbox row of kind 'test' (the alerter's delivery workers send it like
 * any other, woken by NOTIFY secumon_outbox) and waits, bounded, for its outcome: 200 delivered or failed
 * (with the last error), 202 when still pending after `wait` seconds (poll GET …/test/:outbox_id).
 */
import { Elysia, t } from "elysia";
import { CHANNEL_TYPES, channelConfigContext, validateChannelConfig } from "../../alerter/notify/channels.ts";
import type { Tx } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { audit } from "../lib/audit.ts";
import { notFound } from "../lib/http-errors.ts";
import { likePattern, list, PageQuery } from "../lib/list.ts";
import { IdParams, Name } from "../lib/params.ts";
import { inTenant, validationFailed } from "../lib/tx.ts";

export const REDACTED = "********";
const OUTBOX_CHANNEL = "secumon_outbox"; // src/alerter/store/repo.ts: delivery workers LISTEN on it
const MAX_WAIT_S = 30;

type Config = Record<string, unknown>;

/** The config with every secret replaced by REDACTED. */
export function redact(type: string, c: Config): Config {
  const out: Config = { ...c };
  if (type === "slack" && out.webhook_url) out.webhook_url = REDACTED;
  if (type === "webhook") {
    if (out.secret) out.secret = REDACTED;
    if (out.headers && typeof out.headers === "object")
      out.headers = Object.fromEntries(Object.keys(out.headers as object).map((k) => [k, REDACTED]));
    if (typeof out.url === "string") {
      try {
        const u = new URL(out.url);
        if (u.search || u.username || u.password) {
          u.search = u.search ? "?********" : "";
          u.username = "";
          u.password = "";
          out.url = u.href;
        }
      } catch {
        // validated on write; leave as is
      }
    }
  }
  return out;
}

/** PATCH: a field sent as REDACTED (or a header whose value is REDACTED) keeps what is stored. */
function mergeConfig(type: string, old: Config, patch: Config): Config {
  const out: Config = { ...old };
  for (const [k, v] of Object.entries(patch)) {
    if (v === REDACTED) continue;
    if (type === "webhook" && k === "headers" && v && typeof v === "object") {
      const oldH = (old.headers ?? {}) as Record<string, unknown>;
      out.headers = Object.fromEntries(
        Object.entries(v as Record<string, unknown>).map(([h, x]) => [h, x === REDACTED ? oldH[h] : x]),
      );
      continue;
    }
    out[k] = v;
  }
  return out;
}

const COLS = "id, tenant_id, name, type, enabled, config_encrypted, created_at, updated_at";
const Type = t.Union(CHANNEL_TYPES.map((x) => t.Literal(x)));
const ConfigSchema = t.Record(t.String({ maxLength: 100 }), t.Unknown(), {
  description:
    'email {to: [addresses]}, slack {webhook_url}, webhook {url, secret?, headers?, timeout?}, sms {to: ["+E.164"]}',
});

export function channelRoutes(deps: ApiDeps) {
  const show = (r: Record<string, unknown>) => {
    const { config_encrypted, ...rest } = r;
    const config = JSON.parse(
      deps.keyring.openText(config_encrypted as Uint8Array, channelConfigContext(r.id as string)),
    ) as Config;
    return { ...rest, config: redact(r.type as string, config) };
  };
  const raw = async (tx: Tx, id: string, lock = false) => {
    const [r] =
      await tx`select ${tx.unsafe(COLS)} from notification_channels where id = ${id} ${lock ? tx`for update` : tx``}`;
    if (!r) throw notFound("notification channel");
    return r;
  };
  const openConfig = (r: Record<string, unknown>) =>
    JSON.parse(
      deps.keyring.openText(r.config_encrypted as Uint8Array, channelConfigContext(r.id as string)),
    ) as Config;
  const seal = (id: string, c: Config) => deps.keyring.seal(JSON.stringify(c), channelConfigContext(id));
  const validate = (type: string, config: Config) => {
    const errors = validateChannelConfig(type, config);
    if (errors.length) throw validationFailed(errors);
  };

  const outboxStatus = (tx: Tx, id: string) =>
    tx`select id as outbox_id, status as delivery, attempts, last_error, delivered_at, created_at
       from notification_outbox where id = ${id}`.then((r) => r[0]);

  return new Elysia({ name: "api/channels", prefix: "/api/v1/notification-channels" })
    .use(guardPlugin(deps))
    .get(
      "/",
      async ({ query, req }) => {
        const page = await inTenant(deps, req, (tx) =>
          list<Record<string, unknown>>(tx, {
            from: tx`select ${tx.unsafe(COLS)} from notification_channels`,
            where: [
              ...(query.type ? [tx`type = ${query.type}`] : []),
              ...(query.enabled === undefined ? [] : [tx`enabled = ${query.enabled}`]),
              ...(query.q ? [tx`name ilike ${likePattern(query.q)}`] : []),
            ],
            sortable: ["name", "type", "created_at"],
            defaultSort: "name",
            query,
          }),
        );
        return { ...page, data: page.data.map(show) };
      },
      {
        auth: "viewer",
        query: t.Object({
          ...PageQuery,
          type: t.Optional(Type),
          enabled: t.Optional(t.Boolean()),
          q: t.Optional(t.String({ maxLength: 200 })),
        }),
        detail: { summary: "List notification channels (secrets redacted)", tags: ["notifications"] },
      },
    )
    .get("/:id", ({ params, req }) => inTenant(deps, req, async (tx) => show(await raw(tx, params.id))), {
      auth: "viewer",
      params: IdParams,
      detail: { summary: "Get a notification channel (secrets redacted)", tags: ["notifications"] },
    })
    .post(
      "/",
      async ({ body, req, set }) => {
        validate(body.type, body.config);
        const id = crypto.randomUUID();
        const r = await inTenant(deps, req, async (tx) => {
          await tx`
            insert into notification_channels (id, tenant_id, name, type, config_encrypted, enabled)
            values (${id}, ${req.tenantId}, ${body.name}, ${body.type}, ${seal(id, body.config)}, ${body.enabled ?? true})`;
          const row = show(await raw(tx, id));
          await audit(tx, req, {
            action: "notification_channel.create",
            resourceType: "notification_channel",
            resourceId: id,
            new: row,
          });
          return row;
        });
        set.status = 201;
        return r;
      },
      {
        auth: "admin",
        body: t.Object(
          { name: Name, type: Type, config: ConfigSchema, enabled: t.Optional(t.Boolean()) },
          { additionalProperties: false },
        ),
        detail: { summary: "Create a notification channel", tags: ["notifications"] },
      },
    )
    .patch(
      "/:id",
      ({ params, body, req }) =>
        inTenant(deps, req, async (tx) => {
          const r = await raw(tx, params.id, true);
          const old = show(r);
          let sealed: Uint8Array | null = null;
          if (body.config !== undefined) {
            const merged = mergeConfig(r.type as string, openConfig(r), body.config);
            validate(r.type as string, merged);
            sealed = seal(params.id, merged);
          }
          await tx`
            update notification_channels set name = coalesce(${body.name ?? null}, name),
                   enabled = coalesce(${body.enabled ?? null}, enabled),
                   config_encrypted = coalesce(${sealed}::bytea, config_encrypted)
            where id = ${params.id}`;
          const row = show(await raw(tx, params.id));
          await audit(tx, req, {
            action: "notification_channel.update",
            resourceType: "notification_channel",
            resourceId: params.id,
            old,
            new: row,
          });
          return row;
        }),
      {
        auth: "admin",
        params: IdParams,
        body: t.Object(
          { name: t.Optional(Name), config: t.Optional(ConfigSchema), enabled: t.Optional(t.Boolean()) },
          { additionalProperties: false },
        ),
        detail: {
          summary: `Update a notification channel ("${REDACTED}" keeps a stored secret)`,
          tags: ["notifications"],
        },
      },
    )
    .delete(
      "/:id",
      async ({ params, req, set }) => {
        await inTenant(deps, req, async (tx) => {
          const old = show(await raw(tx, params.id, true));
          await tx`delete from notification_channels where id = ${params.id}`;
          await audit(tx, req, {
            action: "notification_channel.delete",
            resourceType: "notification_channel",
            resourceId: params.id,
            old,
          });
        });
        set.status = 204;
      },
      {
        auth: "admin",
        params: IdParams,
        detail: {
          summary: "Delete a notification channel (removed from the rules that use it)",
          tags: ["notifications"],
        },
      },
    )
    .post(
      "/:id/test",
      async ({ params, body, req, set }) => {
        const queued = await inTenant(deps, req, async (tx) => {
          const ch = await raw(tx, params.id);
          const [o] = await tx`
            insert into notification_outbox (tenant_id, channel_id, kind, idempotency_key, payload)
            values (${req.tenantId}, ${params.id}, 'test', gen_random_uuid()::text,
                    ${tx.json({ message: body?.message ?? `Test notification from SecuMon (channel ${ch.name})`, requested_by: req.principal.actor } as never)})
            returning id`;
          await tx`select pg_notify(${OUTBOX_CHANNEL}, '')`;
          await audit(tx, req, {
            action: "notification_channel.test",
            resourceType: "notification_channel",
            resourceId: params.id,
            new: { outbox_id: o?.id },
          });
          return o?.id as string;
        });
        const deadline = Date.now() + (body?.wait ?? 10) * 1000; // wall clock: this is a real wait
        for (;;) {
          const s = await inTenant(deps, req, (tx) => outboxStatus(tx, queued));
          if (s?.delivery === "delivered" || s?.delivery === "failed") return s;
          if (Date.now() >= deadline) {
            set.status = 202;
            return s;
          }
          await Bun.sleep(100);
        }
      },
      {
        auth: "operator",
        params: IdParams,
        body: t.Optional(
          t.Object(
            {
              message: t.Optional(t.String({ maxLength: 1000 })),
              wait: t.Optional(
                t.Integer({
                  minimum: 0,
                  maximum: MAX_WAIT_S,
                  description: "seconds to wait for the outcome",
                }),
              ),
            },
            { additionalProperties: false },
          ),
        ),
        detail: {
          summary: "Send a test notification and wait (bounded) for its delivery",
          tags: ["notifications"],
        },
      },
    )
    .get(
      "/:id/test/:outbox_id",
      async ({ params, req }) => {
        const s = await inTenant(deps, req, async (tx) => {
          const [o] =
            await tx`select 1 from notification_outbox where id = ${params.outbox_id} and channel_id = ${params.id}`;
          return o ? outboxStatus(tx, params.outbox_id) : undefined;
        });
        if (!s) throw notFound("test notification");
        return s;
      },
      {
        auth: "viewer",
        params: t.Object({ id: t.String({ format: "uuid" }), outbox_id: t.String({ format: "uuid" }) }),
        detail: { summary: "Outcome of a test notification", tags: ["notifications"] },
      },
    );
}
