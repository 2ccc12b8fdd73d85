/**
 * Alerts as operators see them:
 *   /alerts               alert instances (the evaluator's per-series state; default: pending and firing),
 *                         each with `silenced` (an active silence matches its labels)
 *   /alerts/:id           one instance with its acknowledgements
 *   /alerts/:id/acknowledge  {comment} — stops repeats and escalation of the current firing episode (the
 *                         database trigger of 030 copies it onto the instance and its history row)
 *   /alerts/history       alert_history: every firing episode, resolved or not
 *   /silences             silences and maintenance windows (matchers validated like the alerter's);
 *                         DELETE expires an active one (ends now) and removes one that has not started
 */
import { Elysia, t } from "elysia";
import { checkMatcher, matchesAll } from "../../alerter/rules/matchers.ts";
import type { LabelMatcher } from "../../alerter/rules/types.ts";
import { CollectorError } from "../../lib/errors.ts";
import type { Tx } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { audit } from "../lib/audit.ts";
import { notFound } from "../lib/http-errors.ts";
import { list, PageQuery } from "../lib/list.ts";
import { IdParams } from "../lib/params.ts";
import { inTenant, validationFailed } from "../lib/tx.ts";

const Severity = t.Union([t.Literal("info"), t.Literal("warning"), t.Literal("critical")]);
const INSTANCE = `
  select i.id, i.tenant_id, i.rule_id, r.name as rule_name, r.severity, i.labels, r.labels as rule_labels, i.state,
         i.active_at, i.fired_at, i.resolved_at, i.value, i.threshold, i.history_id, i.last_sent_at, i.repeat_count,
         i.escalation_level, i.acknowledged_at, i.acknowledged_by, i.ack_comment, i.updated_at
  from alert_instances i join alert_rules r on r.id = i.rule_id`;
const SILENCE_COLS = `id, tenant_id, kind, matchers, starts_at, ends_at, created_by, author, comment, created_at, updated_at`;

const Matcher = t.Object(
  {
    name: t.String({ minLength: 1, maxLength: 100 }),
    op: t.Union([t.Literal("="), t.Literal("!="), t.Literal("=~"), t.Literal("!~")]),
    value: t.String({ maxLength: 1000 }),
  },
  { additionalProperties: false },
);

/** Labels an instance is matched on (030: rule_id, rule, severity, the rule's labels, the series' labels). */
function instanceLabels(r: Record<string, unknown>): Record<string, string> {
  return {
    ...((r.rule_labels as Record<string, string>) ?? {}),
    ...((r.labels as Record<string, string>) ?? {}),
    rule_id: String(r.rule_id),
    rule: String(r.rule_name),
    severity: String(r.severity),
  };
}

export function alertRoutes(deps: ApiDeps) {
  const now = () => new Date(deps.now());
  const activeSilences = async (tx: Tx) =>
    (await tx`select matchers from alert_silences where starts_at <= ${now()} and ends_at > ${now()}`).map(
      (s) => s.matchers as LabelMatcher[],
    );
  const decorate = (rows: Record<string, unknown>[], silences: LabelMatcher[][]) =>
    rows.map((r) => {
      const { rule_labels: _, ...rest } = r;
      const labels = instanceLabels(r);
      return { ...rest, silenced: silences.some((m) => matchesAll(m, labels)) };
    });

  const validateMatchers = (ms: LabelMatcher[] | undefined) => {
    const errors: { path: string; message: string }[] = [];
    ms?.forEach((m, i) => {
      try {
        checkMatcher(m);
      } catch (e) {
        errors.push({ path: `/matchers/${i}`, message: (e as Error).message });
      }
    });
    if (errors.length) throw validationFailed(errors);
  };
  const silence = async (tx: Tx, id: string, lock = false) => {
    const [r] = await tx`
      select ${tx.unsafe(SILENCE_COLS)},
             case when ends_at <= ${now()} then 'expired' when starts_at > ${now()} then 'pending' else 'active' end as state
      from alert_silences where id = ${id} ${lock ? tx`for update` : tx``}`;
    if (!r) throw notFound("silence");
    return r;
  };

  return new Elysia({ name: "api/alerts", prefix: "/api/v1" })
    .use(guardPlugin(deps))
    .get(
      "/alerts",
      ({ query, req }) =>
        inTenant(deps, req, async (tx) => {
          const states = query.state ? [query.state] : ["pending", "firing"];
          const page = await list<Record<string, unknown>>(tx, {
            from: tx`select * from (${tx.unsafe(INSTANCE)}) a`,
            where: [
              tx`state = any(${states}::text[])`,
              ...(query.severity ? [tx`severity = ${query.severity}`] : []),
              ...(query.rule_id ? [tx`rule_id = ${query.rule_id}`] : []),
              ...(query.acknowledged === undefined
                ? []
                : [query.acknowledged ? tx`acknowledged_at is not null` : tx`acknowledged_at is null`]),
            ],
            sortable: ["active_at", "fired_at", "severity", "rule_name", "updated_at"],
            defaultSort: "-active_at",
            query,
          });
          return { ...page, data: decorate(page.data, await activeSilences(tx)) };
        }),
      {
        auth: "viewer",
        query: t.Object({
          ...PageQuery,
          state: t.Optional(t.Union([t.Literal("pending"), t.Literal("firing"), t.Literal("resolved")])),
          severity: t.Optional(Severity),
          rule_id: t.Optional(t.String({ format: "uuid" })),
          acknowledged: t.Optional(t.Boolean()),
        }),
        detail: { summary: "Alerts: current alert instances (default pending and firing)", tags: ["alerts"] },
      },
    )
    .get(
      "/alerts/history",
      ({ query, req }) =>
        inTenant(deps, req, (tx) =>
          list(tx, {
            from: tx`select h.*, r.name as rule_name from alert_history h left join alert_rules r on r.id = h.rule_id`,
            where: [
              ...(query.status ? [tx`h.status = ${query.status}`] : []),
              ...(query.severity ? [tx`h.severity = ${query.severity}`] : []),
              ...(query.rule_id ? [tx`h.rule_id = ${query.rule_id}`] : []),
              ...(query.agent_id ? [tx`h.agent_id = ${query.agent_id}`] : []),
              ...(query.target_id ? [tx`h.target_id = ${query.target_id}`] : []),
              ...(query.from ? [tx`h.fired_at >= ${new Date(query.from)}`] : []),
              ...(query.to ? [tx`h.fired_at < ${new Date(query.to)}`] : []),
            ],
            sortable: ["fired_at", "resolved_at", "severity"],
            defaultSort: "-fired_at",
            query,
          }),
        ),
      {
        auth: "viewer",
        query: t.Object({
          ...PageQuery,
          status: t.Optional(t.Union([t.Literal("firing"), t.Literal("resolved")])),
          severity: t.Optional(Severity),
          rule_id: t.Optional(t.String({ format: "uuid" })),
          agent_id: t.Optional(t.String({ format: "uuid" })),
          target_id: t.Optional(t.String({ format: "uuid" })),
          from: t.Optional(t.String({ format: "date-time" })),
          to: t.Optional(t.String({ format: "date-time" })),
        }),
        detail: { summary: "Alert history: every firing episode", tags: ["alerts"] },
      },
    )
    .get(
      "/alerts/:id",
      ({ params, req }) =>
        inTenant(deps, req, async (tx) => {
          const [r] = await tx`${tx.unsafe(INSTANCE)} where i.id = ${params.id}`;
          if (!r) throw notFound("alert");
          const [d] = decorate([r], await activeSilences(tx));
          const acks = await tx`
            select id, user_id, author, comment, history_id, created_at from alert_acknowledgements
            where instance_id = ${params.id} order by created_at desc`;
          return { ...d, acknowledgements: acks };
        }),
      {
        auth: "viewer",
        params: IdParams,
        detail: { summary: "One alert with its acknowledgements", tags: ["alerts"] },
      },
    )
    .post(
      "/alerts/:id/acknowledge",
      ({ params, body, req }) =>
        inTenant(deps, req, async (tx) => {
          const [inst] = await tx`select id, state from alert_instances where id = ${params.id} for update`;
          if (!inst) throw notFound("alert");
          if (inst.state !== "firing") {
            throw new CollectorError(
              "CONFLICT",
              `this alert is ${inst.state}, not firing, so there is nothing to acknowledge`,
            );
          }
          const [a] = await tx`
            insert into alert_acknowledgements (tenant_id, instance_id, user_id, author, comment)
            values (${req.tenantId}, ${params.id}, ${req.principal.userId}, ${req.principal.actor}, ${body?.comment ?? ""})
            returning id, instance_id, history_id, user_id, author, comment, created_at`;
          await audit(tx, req, {
            action: "alert.acknowledge",
            resourceType: "alert",
            resourceId: params.id,
            new: a,
          });
          return a;
        }),
      {
        auth: "operator",
        params: IdParams,
        body: t.Optional(
          t.Object({ comment: t.Optional(t.String({ maxLength: 2000 })) }, { additionalProperties: false }),
        ),
        detail: { summary: "Acknowledge a firing alert (stops repeats and escalation)", tags: ["alerts"] },
      },
    )
    .get(
      "/silences",
      ({ query, req }) =>
        inTenant(deps, req, (tx) =>
          list(tx, {
            from: tx`select ${tx.unsafe(SILENCE_COLS)},
                            case when ends_at <= ${now()} then 'expired' when starts_at > ${now()} then 'pending'
                                 else 'active' end as state
                     from alert_silences`,
            where: [
              ...(query.state ? [tx`state = ${query.state}`] : []),
              ...(query.kind ? [tx`kind = ${query.kind}`] : []),
            ],
            sortable: ["starts_at", "ends_at", "created_at"],
            defaultSort: "-ends_at",
            query,
          }),
        ),
      {
        auth: "viewer",
        query: t.Object({
          ...PageQuery,
          state: t.Optional(t.Union([t.Literal("active"), t.Literal("pending"), t.Literal("expired")])),
          kind: t.Optional(t.Union([t.Literal("silence"), t.Literal("maintenance")])),
        }),
        detail: { summary: "List silences and maintenance windows", tags: ["alerts"] },
      },
    )
    .get("/silences/:id", ({ params, req }) => inTenant(deps, req, (tx) => silence(tx, params.id)), {
      auth: "viewer",
      params: IdParams,
      detail: { summary: "Get a silence", tags: ["alerts"] },
    })
    .post(
      "/silences",
      async ({ body, req, set }) => {
        validateMatchers(body.matchers);
        const starts = body.starts_at ? new Date(body.starts_at) : now();
        const ends = new Date(body.ends_at);
        if (!(ends.getTime() > starts.getTime()) || ends.getTime() <= deps.now())
          throw validationFailed([
            { path: "/ends_at", message: "must be in the future and after starts_at" },
          ]);
        const r = await inTenant(deps, req, async (tx) => {
          const [x] = await tx`
            insert into alert_silences (tenant_id, kind, matchers, starts_at, ends_at, created_by, author, comment)
            values (${req.tenantId}, ${body.kind ?? "silence"}, ${tx.json(body.matchers as never)}, ${starts}, ${ends},
                    ${req.principal.userId}, ${req.principal.actor}, ${body.comment ?? ""})
            returning id`;
          const row = await silence(tx, x?.id);
          await audit(tx, req, {
            action: "silence.create",
            resourceType: "silence",
            resourceId: x?.id,
            new: row,
          });
          return row;
        });
        set.status = 201;
        return r;
      },
      {
        auth: "operator",
        body: t.Object(
          {
            kind: t.Optional(t.Union([t.Literal("silence"), t.Literal("maintenance")])),
            matchers: t.Array(Matcher, { maxItems: 50 }),
            starts_at: t.Optional(t.String({ format: "date-time" })),
            ends_at: t.String({ format: "date-time" }),
            comment: t.Optional(t.String({ maxLength: 2000 })),
          },
          { additionalProperties: false },
        ),
        detail: {
          summary: "Create a silence or maintenance window (empty matchers: every alert)",
          tags: ["alerts"],
        },
      },
    )
    .patch(
      "/silences/:id",
      ({ params, body, req }) =>
        inTenant(deps, req, async (tx) => {
          validateMatchers(body.matchers);
          const old = await silence(tx, params.id, true);
          if (old.state === "expired")
            throw new CollectorError("CONFLICT", "this silence has expired; create a new one");
          const starts = body.starts_at ? new Date(body.starts_at) : (old.starts_at as Date);
          const ends = body.ends_at ? new Date(body.ends_at) : (old.ends_at as Date);
          if (!(ends.getTime() > starts.getTime()))
            throw validationFailed([{ path: "/ends_at", message: "must be after starts_at" }]);
          await tx`
            update alert_silences set starts_at = ${starts}, ends_at = ${ends},
                   matchers = coalesce(${body.matchers === undefined ? null : tx.json(body.matchers as never)}, matchers),
                   comment = coalesce(${body.comment ?? null}, comment)
            where id = ${params.id}`;
          const row = await silence(tx, params.id);
          await audit(tx, req, {
            action: "silence.update",
            resourceType: "silence",
            resourceId: params.id,
            old,
            new: row,
          });
          return row;
        }),
      {
        auth: "operator",
        params: IdParams,
        body: t.Object(
          {
            matchers: t.Optional(t.Array(Matcher, { maxItems: 50 })),
            starts_at: t.Optional(t.String({ format: "date-time" })),
            ends_at: t.Optional(t.String({ format: "date-time" })),
            comment: t.Optional(t.String({ maxLength: 2000 })),
          },
          { additionalProperties: false },
        ),
        detail: { summary: "Change a silence (extend it, edit matchers or comment)", tags: ["alerts"] },
      },
    )
    .delete(
      "/silences/:id",
      async ({ params, req, set }) => {
        await inTenant(deps, req, async (tx) => {
          const old = await silence(tx, params.id, true);
          if (old.state === "pending") await tx`delete from alert_silences where id = ${params.id}`;
          else if (old.state === "active")
            // ends now (a silence created this very millisecond still ends after it starts)
            await tx`update alert_silences set ends_at = greatest(${now()}, starts_at + interval '1 millisecond') where id = ${params.id}`;
          await audit(tx, req, {
            action: "silence.expire",
            resourceType: "silence",
            resourceId: params.id,
            old,
          });
        });
        set.status = 204;
      },
      {
        auth: "operator",
        params: IdParams,
        detail: { summary: "Expire (or remove a future) silence", tags: ["alerts"] },
      },
    );
}
