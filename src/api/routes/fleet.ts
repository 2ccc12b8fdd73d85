/**
 * Agents, probes and targets of the caller's tenant. Agents and probes appear through enrollment (gateway);
 * here they are listed (filter by status, tag, text), read, updated (name, tags, config) and revoked: DELETE
 * sets status 'revoked', which the gateway's trigger turns into an immediate lock-out. Targets carry their
 * tests (JSON array) and the probes assigned to scan them (target_probes).
 */
import { Elysia, t } from "elysia";
import { type Tx, withTenant } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin, type RequestInfo } from "../guard.ts";
import { audit } from "../lib/audit.ts";
import { invalid, mapWriteError, notFound } from "../lib/http-errors.ts";
import { columnNames, jsonObject, likePattern, list, listJson, PageQuery } from "../lib/list.ts";
import { IdParams, JsonObject, Name, Tags } from "../lib/params.ts";
import { tenantRead } from "../lib/tx.ts";

const Status = t.Union(["pending", "online", "offline", "disabled", "revoked"].map((s) => t.Literal(s)));
/** The columns agents and probes share, in the order both lists answer them. */
const FLEET_TAIL = [
  "status",
  "last_seen",
  "config",
  "tags",
  // host(): the plain address ("10.0.0.5"); inet::text would keep the mask ("10.0.0.5/32")
  "host(wireguard_ip) as wireguard_ip",
  "created_at",
  "updated_at",
];
const AGENT_COLUMNS = [
  "id",
  "tenant_id",
  "name",
  "hostname",
  "host(ip_addresses[1]) as primary_ip",
  "array(select host(a.ip) from unnest(ip_addresses) with ordinality a(ip, n) order by a.n) as ip_addresses",
  "os",
  "os_version",
  "arch",
  "version",
  ...FLEET_TAIL,
];
const PROBE_COLUMNS = ["id", "tenant_id", "name", "location", "type", ...FLEET_TAIL];
const AGENT_COLS = AGENT_COLUMNS.join(", ");
const PROBE_COLS = PROBE_COLUMNS.join(", ");
const FLEET_TIMESTAMPS = ["last_seen", "created_at", "updated_at"];
/** One list item's JSON, built by PostgreSQL (listJson). */
const AGENT_JSON = jsonObject(columnNames(AGENT_COLUMNS), FLEET_TIMESTAMPS);
const PROBE_JSON = jsonObject(columnNames(PROBE_COLUMNS), FLEET_TIMESTAMPS);
const TARGET_COLS = `id, tenant_id, name, address, type, enabled, tests, tags, created_at, updated_at,
  coalesce((select array_agg(tp.probe_id order by tp.probe_id) from target_probes tp where tp.target_id = targets.id), '{}') as probe_ids`;

const FleetQuery = t.Object({
  ...PageQuery,
  status: t.Optional(Status),
  tag: t.Optional(t.String({ maxLength: 64 })),
  q: t.Optional(t.String({ maxLength: 200 })),
});

export function fleetRoutes(deps: ApiDeps) {
  const tx = <T>(req: RequestInfo, fn: (tx: Tx) => Promise<T>) =>
    withTenant(deps.sql, req.tenantId, fn).catch((e) => {
      throw mapWriteError(e);
    });

  const one = async (t: Tx, table: string, cols: string, id: string, what: string, lock = false) => {
    const [r] =
      await t`select ${t.unsafe(cols)} from ${t(table)} where id = ${id} ${lock ? t`for update` : t``}`;
    if (!r) throw notFound(what);
    return r;
  };

  const app = new Elysia({ name: "api/fleet", prefix: "/api/v1" }).use(guardPlugin(deps));

  for (const kind of ["agents", "probes"] as const) {
    const cols = kind === "agents" ? AGENT_COLS : PROBE_COLS;
    const what = kind.slice(0, -1);
    const searchCols = kind === "agents" ? ["name", "hostname"] : ["name", "location"];
    app
      .get(
        `/${kind}`,
        async ({ query, req }) =>
          new Response(
            await listJson(tenantRead(deps, req), {
              select: (t) => ({
                from: t`select ${t.unsafe(cols)} from ${t(kind)}`,
                where: [
                  ...(query.status ? [t`status = ${query.status}`] : []),
                  ...(query.tag ? [t`tags @> ${[query.tag]}::text[]`] : []),
                  ...(query.q
                    ? [
                        t`(${t(searchCols[0] as string)} ilike ${likePattern(query.q)}
                           or coalesce(${t(searchCols[1] as string)}, '') ilike ${likePattern(query.q)})`,
                      ]
                    : []),
                ],
              }),
              item: kind === "agents" ? AGENT_JSON : PROBE_JSON,
              sortable: ["name", "status", "last_seen", "created_at"],
              defaultSort: "name",
              query,
            }),
            { headers: { "content-type": "application/json" } },
          ),
        { auth: "viewer", query: FleetQuery, detail: { summary: `List ${kind}`, tags: [kind] } },
      )
      .get(`/${kind}/:id`, ({ params, req }) => tx(req, (t) => one(t, kind, cols, params.id, what)), {
        auth: "viewer",
        params: IdParams,
        detail: { summary: `Get one ${what}`, tags: [kind] },
      })
      .patch(
        `/${kind}/:id`,
        ({ params, body, req }) =>
          tx(req, async (t) => {
            const old = await one(t, kind, cols, params.id, what, true);
            await t`
              update ${t(kind)} set
                name = coalesce(${body.name ?? null}, name),
                tags = coalesce(${body.tags ?? null}::text[], tags),
                config = coalesce(${body.config === undefined ? null : t.json(body.config as never)}, config),
                ${
                  kind === "probes" && "location" in body && body.location !== undefined
                    ? t`location = ${body.location},`
                    : t``
                }
                status = case when ${body.enabled ?? null}::boolean is null then status
                              when ${body.enabled ?? null}::boolean then (case when status = 'disabled' then 'offline' else status end)
                              else (case when status = 'revoked' then status else 'disabled' end) end
              where id = ${params.id}`;
            const r = await one(t, kind, cols, params.id, what);
            await audit(t, req, {
              action: `${what}.update`,
              resourceType: what,
              resourceId: params.id,
              old,
              new: r,
            });
            return r;
          }),
        {
          auth: "operator",
          params: IdParams,
          body: t.Object(
            {
              name: t.Optional(Name),
              tags: t.Optional(Tags),
              config: t.Optional(JsonObject),
              enabled: t.Optional(t.Boolean()),
              // a probe's location (null clears it); an agent's host facts come from the agent itself
              ...(kind === "probes"
                ? { location: t.Optional(t.Nullable(t.String({ maxLength: 200 }))) }
                : {}),
            },
            { additionalProperties: false },
          ),
          detail: {
            summary: `Update ${kind === "probes" ? "a probe: name, location" : "an agent: name"}, tags, config, enabled`,
            tags: [kind],
          },
        },
      )
      .delete(
        `/${kind}/:id`,
        ({ params, req }) =>
          tx(req, async (t) => {
            const old = await one(t, kind, cols, params.id, what, true);
            await t`update ${t(kind)} set status = 'revoked' where id = ${params.id}`;
            const r = await one(t, kind, cols, params.id, what);
            await audit(t, req, {
              action: `${what}.revoke`,
              resourceType: what,
              resourceId: params.id,
              old,
              new: r,
            });
            return r;
          }),
        {
          auth: "admin",
          params: IdParams,
          detail: { summary: `Revoke an ${what} (locks it out at once; history is kept)`, tags: [kind] },
        },
      );
  }

  app.post(
    "/probes",
    async ({ body, req, set }) => {
      const r = await tx(req, async (t) => {
        const [p] = await t`
          insert into probes (tenant_id, name, location, type, tags, config)
          values (${req.tenantId}, ${body.name}, ${body.location ?? null}, ${body.type ?? "external"},
                  ${body.tags ?? []}::text[], ${t.json((body.config ?? {}) as never)})
          returning id`;
        const row = await one(t, "probes", PROBE_COLS, p?.id, "probe");
        await audit(t, req, { action: "probe.create", resourceType: "probe", resourceId: p?.id, new: row });
        return row;
      });
      set.status = 201;
      return r;
    },
    {
      auth: "admin",
      body: t.Object(
        {
          name: Name,
          location: t.Optional(t.String({ maxLength: 200 })),
          type: t.Optional(t.Union([t.Literal("external"), t.Literal("internal")])),
          tags: t.Optional(Tags),
          config: t.Optional(JsonObject),
        },
        { additionalProperties: false },
      ),
      detail: {
        summary: "Pre-register a probe (it enrolls with a probe enrollment token)",
        tags: ["probes"],
      },
    },
  );

  const TargetBody = {
    name: Name,
    address: t.String({ minLength: 1, maxLength: 2048 }),
    type: t.String({ pattern: "^[a-z][a-z0-9_]{0,31}$" }),
    enabled: t.Optional(t.Boolean()),
    tests: t.Optional(
      t.Array(
        t.Object({ type: t.String({ pattern: "^[a-z][a-z0-9_]{0,31}$" }) }, { additionalProperties: true }),
        { maxItems: 50 },
      ),
    ),
    tags: t.Optional(Tags),
    probe_ids: t.Optional(t.Array(t.String({ format: "uuid" }), { maxItems: 100, uniqueItems: true })),
  };
  const setProbes = async (t: Tx, tenantId: string, targetId: string, ids: string[] | undefined) => {
    if (ids === undefined) return;
    if (ids.length) {
      // row-level security: another tenant's probe is as unknown as one that never existed
      const found = await t<{ id: string }[]>`select id from probes where id = any(${ids}::uuid[])`;
      const known = new Set(found.map((p) => p.id));
      const missing = ids.filter((i) => !known.has(i.toLowerCase()));
      if (missing.length) throw invalid("body/probe_ids", `no such probe: ${missing.join(", ")}`);
    }
    await t`delete from target_probes where target_id = ${targetId}`;
    for (const p of ids) {
      await t`insert into target_probes (tenant_id, target_id, probe_id) values (${tenantId}, ${targetId}, ${p})`;
    }
  };

  return app
    .get(
      "/targets",
      ({ query, req }) =>
        tx(req, (t) =>
          list(t, {
            from: t`select ${t.unsafe(TARGET_COLS)} from targets`,
            where: [
              ...(query.type ? [t`type = ${query.type}`] : []),
              ...(query.tag ? [t`tags @> ${[query.tag]}::text[]`] : []),
              ...(query.q
                ? [t`(name ilike ${likePattern(query.q)} or address ilike ${likePattern(query.q)})`]
                : []),
              ...(query.enabled === undefined ? [] : [t`enabled = ${query.enabled}`]),
            ],
            sortable: ["name", "type", "created_at"],
            defaultSort: "name",
            query,
          }),
        ),
      {
        auth: "viewer",
        query: t.Object({
          ...PageQuery,
          type: t.Optional(t.String({ maxLength: 32 })),
          tag: t.Optional(t.String({ maxLength: 64 })),
          q: t.Optional(t.String({ maxLength: 200 })),
          enabled: t.Optional(t.Boolean()),
        }),
        detail: { summary: "List targets", tags: ["targets"] },
      },
    )
    .get(
      "/targets/:id",
      ({ params, req }) => tx(req, (t) => one(t, "targets", TARGET_COLS, params.id, "target")),
      {
        auth: "viewer",
        params: IdParams,
        detail: { summary: "Get a target with its tests and assigned probes", tags: ["targets"] },
      },
    )
    .post(
      "/targets",
      async ({ body, req, set }) => {
        const r = await tx(req, async (t) => {
          const [x] = await t`
            insert into targets (tenant_id, name, address, type, enabled, tests, tags)
            values (${req.tenantId}, ${body.name}, ${body.address}, ${body.type}, ${body.enabled ?? true},
                    ${t.json((body.tests ?? []) as never)}, ${body.tags ?? []}::text[])
            returning id`;
          await setProbes(t, req.tenantId, x?.id, body.probe_ids);
          const row = await one(t, "targets", TARGET_COLS, x?.id, "target");
          await audit(t, req, {
            action: "target.create",
            resourceType: "target",
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
        body: t.Object(TargetBody, { additionalProperties: false }),
        detail: { summary: "Create a target", tags: ["targets"] },
      },
    )
    .patch(
      "/targets/:id",
      ({ params, body, req }) =>
        tx(req, async (t) => {
          const old = await one(t, "targets", TARGET_COLS, params.id, "target", true);
          await t`
            update targets set
              name = coalesce(${body.name ?? null}, name),
              address = coalesce(${body.address ?? null}, address),
              type = coalesce(${body.type ?? null}, type),
              enabled = coalesce(${body.enabled ?? null}, enabled),
              tests = coalesce(${body.tests === undefined ? null : t.json(body.tests as never)}, tests),
              tags = coalesce(${body.tags ?? null}::text[], tags)
            where id = ${params.id}`;
          await setProbes(t, req.tenantId, params.id, body.probe_ids);
          const r = await one(t, "targets", TARGET_COLS, params.id, "target");
          await audit(t, req, {
            action: "target.update",
            resourceType: "target",
            resourceId: params.id,
            old,
            new: r,
          });
          return r;
        }),
      {
        auth: "operator",
        params: IdParams,
        body: t.Partial(t.Object(TargetBody, { additionalProperties: false })),
        detail: { summary: "Update a target (probe_ids replaces the assignment)", tags: ["targets"] },
      },
    )
    .delete(
      "/targets/:id",
      async ({ params, req, set }) => {
        await tx(req, async (t) => {
          const old = await one(t, "targets", TARGET_COLS, params.id, "target");
          await t`delete from targets where id = ${params.id}`;
          await audit(t, req, {
            action: "target.delete",
            resourceType: "target",
            resourceId: params.id,
            old,
          });
        });
        set.status = 204;
      },
      { auth: "operator", params: IdParams, detail: { summary: "Delete a target", tags: ["targets"] } },
    );
}
