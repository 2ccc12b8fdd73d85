/**
 * Inventory reads: which hosts have a package (at a version), an agent's current inventory, and what changed
 * on it over time (inventory_changes, written by the ingestion worker when a new snapshot differs).
 */
import { Elysia, t } from "elysia";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { notFound } from "../lib/http-errors.ts";
import { likePattern, pastTheEnd } from "../lib/list.ts";
import { IdParams } from "../lib/params.ts";
import { inTenant } from "../lib/tx.ts";
import { parseRange } from "../telemetry/range.ts";
import { agentExists } from "./telemetry.ts";

const Page = {
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 1000 })),
  offset: t.Optional(t.Integer({ minimum: 0, maximum: 100_000 })),
};

export function inventoryRoutes(deps: ApiDeps) {
  return new Elysia({ name: "api/inventory", prefix: "/api/v1" })
    .use(guardPlugin(deps))
    .get(
      "/inventory/packages",
      ({ query, req }) => {
        const limit = query.limit ?? 100;
        const offset = query.offset ?? 0;
        return inTenant(deps, req, async (tx) => {
          const from = tx`
            from inventory_packages p join agents a on a.id = p.agent_id
            where p.tenant_id = ${req.tenantId}
              ${query.name ? tx`and p.name = ${query.name}` : tx``}
              ${query.q ? tx`and p.name ilike ${likePattern(query.q)}` : tx``}
              ${query.version ? tx`and p.version = ${query.version}` : tx``}
              ${query.version_prefix ? tx`and p.version like ${`${query.version_prefix.replace(/[\\%_]/g, (m) => `\\${m}`)}%`}` : tx``}
              ${query.manager ? tx`and p.manager = ${query.manager}` : tx``}`;
          const rows = await tx`
            select p.agent_id, a.name as agent_name, a.hostname, a.status as agent_status, p.manager, p.name, p.arch,
                   p.version, p.first_seen, count(*) over ()::int as total_count
            ${from}
            order by p.name, p.version, a.name, p.agent_id limit ${limit} offset ${offset}`;
          return pastTheEnd(rows, limit, offset, () => tx`select count(*)::int as n ${from}`);
        });
      },
      {
        auth: "viewer",
        query: t.Object({
          name: t.Optional(t.String({ maxLength: 200, description: "exact package name" })),
          q: t.Optional(t.String({ maxLength: 200, description: "substring of the package name" })),
          version: t.Optional(t.String({ maxLength: 200 })),
          version_prefix: t.Optional(t.String({ maxLength: 200 })),
          manager: t.Optional(t.String({ maxLength: 32 })),
          ...Page,
        }),
        detail: { summary: "Which hosts have package X (at version Y)", tags: ["inventory"] },
      },
    )
    .get(
      "/agents/:id/inventory",
      ({ params, req }) =>
        inTenant(deps, req, async (tx) => {
          await agentExists(tx, params.id);
          const [host] = await tx`
            select collected_at, hostname, os_name, os_version, kernel, arch, boot_time, packages, services, ports, updated_at
            from inventory_hosts where agent_id = ${params.id}`;
          if (!host) throw notFound("inventory of this agent (it has not sent one yet)");
          const [packages, services, ports] = await Promise.all([
            tx`select manager, name, arch, version, first_seen from inventory_packages where agent_id = ${params.id} order by name, arch`,
            tx`select name, state, enabled from inventory_services where agent_id = ${params.id} order by name`,
            tx`select protocol, address, port, process, pid from inventory_ports where agent_id = ${params.id} order by port, protocol`,
          ]);
          return { agent_id: params.id, host, packages, services, ports };
        }),
      {
        auth: "viewer",
        params: IdParams,
        detail: { summary: "An agent's current inventory", tags: ["inventory"] },
      },
    )
    .get(
      "/agents/:id/inventory/changes",
      ({ params, query, req }) => {
        const range = parseRange(query, deps.now(), "-30d");
        const limit = query.limit ?? 100;
        const offset = query.offset ?? 0;
        return inTenant(deps, req, async (tx) => {
          await agentExists(tx, params.id);
          const from = tx`
            from inventory_changes
            where tenant_id = ${req.tenantId} and agent_id = ${params.id} and time >= ${range.from} and time < ${range.to}
              ${query.item_type ? tx`and item_type = ${query.item_type}` : tx``}`;
          const rows = await tx`
            select time, item_type, item, change, old_value, new_value, count(*) over ()::int as total_count
            ${from}
            order by time desc, id desc limit ${limit} offset ${offset}`;
          return pastTheEnd(rows, limit, offset, () => tx`select count(*)::int as n ${from}`);
        });
      },
      {
        auth: "viewer",
        params: IdParams,
        query: t.Object({
          from: t.Optional(t.String({ maxLength: 40 })),
          to: t.Optional(t.String({ maxLength: 40 })),
          item_type: t.Optional(
            t.Union([t.Literal("package"), t.Literal("service"), t.Literal("port"), t.Literal("os")]),
          ),
          ...Page,
        }),
        detail: { summary: "What changed in an agent's inventory", tags: ["inventory"] },
      },
    );
}
