/**
 * Alert rules (seed: /api/v1/alerts/rules). The rule itself is validated by the alerter's own validator
 * (src/alerter/rules/validate.ts: same checks on write and on load, errors with JSON paths → 422), plus the
 * channels it notifies (`channel_ids`, alert_rule_channels) and its escalation steps (`escalations`:
 * [{level, after, channel_ids}], alert_rule_escalations). Durations are read and written as "5m", "1h30m".
 */
import { Elysia, t } from "elysia";
import { formatDuration, parseRuleDuration } from "../../alerter/rules/duration.ts";
import { validateRule } from "../../alerter/rules/validate.ts";
import type { Tx } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { audit } from "../lib/audit.ts";
import { notFound } from "../lib/http-errors.ts";
import { likePattern, list, PageQuery } from "../lib/list.ts";
import { IdParams } from "../lib/params.ts";
import { inTenant, validationFailed } from "../lib/tx.ts";

const SELECT = `
  select r.id, r.tenant_id, r.name, r.description, r.enabled, r.severity, r.type, r.conditions,
         (extract(epoch from r.for_duration) * 1000)::float8 as for_ms,
         (extract(epoch from r.keep_firing_for) * 1000)::float8 as keep_ms,
         (extract(epoch from r.repeat_interval) * 1000)::float8 as repeat_ms,
         r.labels, r.annotations, r.created_at, r.updated_at,
         coalesce((select array_agg(c.channel_id order by c.channel_id) from alert_rule_channels c
                   where c.rule_id = r.id), '{}') as channel_ids,
         coalesce((select jsonb_agg(jsonb_build_object('level', e.level,
                                    'after_ms', (extract(epoch from e.after) * 1000)::float8,
                                    'channel_id', e.channel_id) order by e.level, e.channel_id)
                   from alert_rule_escalations e where e.rule_id = r.id), '[]') as escalations
  from alert_rules r`;

type Row = Record<string, unknown> & {
  for_ms: number;
  keep_ms: number;
  repeat_ms: number | null;
  escalations: { level: number; after_ms: number; channel_id: string }[];
};

/** The row as the API shows it: durations as text, escalation rows grouped by level. */
export function present(r: Row): Record<string, unknown> & { repeat_interval: string | null } {
  const { for_ms, keep_ms, repeat_ms, escalations, ...rest } = r;
  const steps = new Map<number, { level: number; after: string; channel_ids: string[] }>();
  for (const e of escalations) {
    const s = steps.get(e.level) ?? { level: e.level, after: formatDuration(e.after_ms), channel_ids: [] };
    s.channel_ids.push(e.channel_id);
    steps.set(e.level, s);
  }
  return {
    ...rest,
    for_duration: formatDuration(for_ms),
    keep_firing_for: formatDuration(keep_ms),
    repeat_interval: repeat_ms === null ? null : formatDuration(repeat_ms),
    escalations: [...steps.values()],
  };
}

const Uuids = t.Array(t.String({ format: "uuid" }), { maxItems: 50, uniqueItems: true });
const Escalations = t.Array(
  t.Object(
    { level: t.Integer({ minimum: 1, maximum: 10 }), after: t.String({ maxLength: 20 }), channel_ids: Uuids },
    { additionalProperties: false },
  ),
  { maxItems: 10 },
);
const RuleBody = t.Object(
  {
    name: t.Optional(t.String({ maxLength: 200 })),
    severity: t.Optional(t.String({ maxLength: 20 })),
    type: t.Optional(t.String({ maxLength: 20 })),
    conditions: t.Optional(t.Unknown()),
    channel_ids: t.Optional(Uuids),
    escalations: t.Optional(Escalations),
  },
  {
    additionalProperties: true,
    description:
      "An alert rule: name, description, enabled, severity, type, conditions, for_duration, keep_firing_for, repeat_interval, labels, annotations (see src/alerter/rules/types.ts), plus channel_ids and escalations.",
  },
);
type Body = Record<string, unknown> & {
  channel_ids?: string[];
  escalations?: { level: number; after: string; channel_ids: string[] }[];
};

export function alertRuleRoutes(deps: ApiDeps) {
  const one = async (tx: Tx, id: string, lock = false) => {
    const [r] = await tx`${tx.unsafe(SELECT)} where r.id = ${id} ${lock ? tx`for update of r` : tx``}`;
    if (!r) throw notFound("alert rule");
    return present(r as Row);
  };

  const check = (input: Record<string, unknown>, b: Body) => {
    const v = validateRule(input);
    const errors = v.ok ? [] : [...v.errors];
    b.escalations?.forEach((e, i) => {
      const ms = parseRuleDuration(e.after);
      if (!ms)
        errors.push({
          path: `/escalations/${i}/after`,
          message: 'after must be a duration such as "15m" (more than 0)',
        });
    });
    if (!v.ok || errors.length) throw validationFailed(errors);
    return v;
  };

  const save = async (
    tx: Tx,
    tenantId: string,
    id: string,
    b: Body,
    v: ReturnType<typeof check>,
    create: boolean,
  ) => {
    const r = v.rule;
    const ms = (x: number | null) => (x === null ? null : `${x} milliseconds`);
    if (create) {
      await tx`
        insert into alert_rules (id, tenant_id, name, description, enabled, severity, type, conditions, for_duration,
                                 keep_firing_for, repeat_interval, labels, annotations)
        values (${id}, ${tenantId}, ${r.name}, ${r.description ?? null}, ${r.enabled ?? true}, ${r.severity}, ${r.type},
                ${tx.json(r.conditions as never)}, ${ms(v.forMs)}::interval, ${ms(v.keepFiringForMs)}::interval,
                ${ms(v.repeatMs)}::interval, ${tx.json((r.labels ?? {}) as never)}, ${tx.json((r.annotations ?? {}) as never)})`;
    } else {
      await tx`
        update alert_rules set name = ${r.name}, description = ${r.description ?? null}, enabled = ${r.enabled ?? true},
               severity = ${r.severity}, type = ${r.type}, conditions = ${tx.json(r.conditions as never)},
               for_duration = ${ms(v.forMs)}::interval, keep_firing_for = ${ms(v.keepFiringForMs)}::interval,
               repeat_interval = ${ms(v.repeatMs)}::interval, labels = ${tx.json((r.labels ?? {}) as never)},
               annotations = ${tx.json((r.annotations ?? {}) as never)}
        where id = ${id}`;
    }
    if (b.channel_ids !== undefined) {
      await tx`delete from alert_rule_channels where rule_id = ${id}`;
      for (const c of b.channel_ids)
        await tx`insert into alert_rule_channels (tenant_id, rule_id, channel_id) values (${tenantId}, ${id}, ${c})`;
    }
    if (b.escalations !== undefined) {
      await tx`delete from alert_rule_escalations where rule_id = ${id}`;
      for (const e of b.escalations)
        for (const c of e.channel_ids)
          await tx`
            insert into alert_rule_escalations (tenant_id, rule_id, level, after, channel_id)
            values (${tenantId}, ${id}, ${e.level}, ${ms(parseRuleDuration(e.after))}::interval, ${c})`;
    }
  };

  const ruleFields = (b: Body) => {
    const { channel_ids: _c, escalations: _e, ...rest } = b;
    return rest;
  };

  return new Elysia({ name: "api/alert-rules", prefix: "/api/v1/alerts/rules" })
    .use(guardPlugin(deps))
    .get(
      "/",
      async ({ query, req }) => {
        const page = await inTenant(deps, req, (tx) =>
          list<Row>(tx, {
            from: tx`select * from (${tx.unsafe(SELECT)}) r`,
            where: [
              ...(query.severity ? [tx`severity = ${query.severity}`] : []),
              ...(query.type ? [tx`type = ${query.type}`] : []),
              ...(query.enabled === undefined ? [] : [tx`enabled = ${query.enabled}`]),
              ...(query.q ? [tx`name ilike ${likePattern(query.q)}`] : []),
            ],
            sortable: ["name", "severity", "type", "created_at", "updated_at"],
            defaultSort: "name",
            query,
          }),
        );
        return { ...page, data: page.data.map(present) };
      },
      {
        auth: "viewer",
        query: t.Object({
          ...PageQuery,
          severity: t.Optional(t.Union([t.Literal("info"), t.Literal("warning"), t.Literal("critical")])),
          type: t.Optional(t.Union(["threshold", "change", "anomaly", "absent"].map((x) => t.Literal(x)))),
          enabled: t.Optional(t.Boolean()),
          q: t.Optional(t.String({ maxLength: 200 })),
        }),
        detail: { summary: "List alert rules", tags: ["alerts"] },
      },
    )
    .get("/:id", ({ params, req }) => inTenant(deps, req, (tx) => one(tx, params.id)), {
      auth: "viewer",
      params: IdParams,
      detail: { summary: "Get an alert rule with its channels and escalation steps", tags: ["alerts"] },
    })
    .post(
      "/",
      async ({ body, req, set }) => {
        const b = body as Body;
        const v = check(ruleFields(b), b);
        const id = crypto.randomUUID();
        const r = await inTenant(deps, req, async (tx) => {
          await save(tx, req.tenantId, id, b, v, true);
          const row = await one(tx, id);
          await audit(tx, req, {
            action: "alert_rule.create",
            resourceType: "alert_rule",
            resourceId: id,
            new: row,
          });
          return row;
        });
        set.status = 201;
        return r;
      },
      { auth: "operator", body: RuleBody, detail: { summary: "Create an alert rule", tags: ["alerts"] } },
    )
    .patch(
      "/:id",
      ({ params, body, req }) =>
        inTenant(deps, req, async (tx) => {
          const b = body as Body;
          const old = await one(tx, params.id, true);
          const merged = {
            name: old.name,
            description: old.description,
            enabled: old.enabled,
            severity: old.severity,
            type: old.type,
            conditions: old.conditions,
            for_duration: old.for_duration,
            keep_firing_for: old.keep_firing_for,
            repeat_interval: old.repeat_interval ?? undefined,
            labels: old.labels,
            annotations: old.annotations,
            ...ruleFields(b),
          };
          const v = check(merged, b);
          await save(tx, req.tenantId, params.id, b, v, false);
          const row = await one(tx, params.id);
          await audit(tx, req, {
            action: "alert_rule.update",
            resourceType: "alert_rule",
            resourceId: params.id,
            old,
            new: row,
          });
          return row;
        }),
      {
        auth: "operator",
        params: IdParams,
        body: RuleBody,
        detail: {
          summary: "Update an alert rule (fields given replace; channel_ids/escalations replace the sets)",
          tags: ["alerts"],
        },
      },
    )
    .delete(
      "/:id",
      async ({ params, req, set }) => {
        await inTenant(deps, req, async (tx) => {
          const old = await one(tx, params.id, true);
          await tx`delete from alert_rules where id = ${params.id}`;
          await audit(tx, req, {
            action: "alert_rule.delete",
            resourceType: "alert_rule",
            resourceId: params.id,
            old,
          });
        });
        set.status = 204;
      },
      {
        auth: "operator",
        params: IdParams,
        detail: { summary: "Delete an alert rule (its history is kept)", tags: ["alerts"] },
      },
    );
}
