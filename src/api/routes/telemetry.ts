/**
 * Telemetry reads (tenant-scoped like everything else: RLS on every telemetry table):
 *   GET  /agents/:id/metrics?from=-1h&to=now&resolution=auto&metrics=cpu_usage,mem_usage
 *        one agent's system metrics as columns for a chart: time[], and per metric avg, _min and _max
 *   POST /metrics/query  several series at once: metric, aggregation, agents/tags, group by agent/tag/device
 *   GET  /agents/:id/logs?q=&level=&source=&from=&to=   newest first; q is a web-search-style full-text query
 *   GET  /targets/:id/results?from=&to=&test_type=&success=  scan results of a target, newest first
 */
import { Elysia, t } from "elysia";
import type { Tx } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { invalid, notFound } from "../lib/http-errors.ts";
import { pastTheEnd } from "../lib/list.ts";
import { IdParams } from "../lib/params.ts";
import { inTenant, tenantRead } from "../lib/tx.ts";
import { parseRange, pickResolution, RESOLUTIONS, stepFor } from "../telemetry/range.ts";
import { AGGREGATIONS, type GroupBy, METRICS, queryChartJson, querySeries } from "../telemetry/series.ts";

const LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"] as const;
const TimeQuery = {
  from: t.Optional(
    t.String({ maxLength: 40, description: "now, -15m, -24h, -7d, ISO date-time or Unix ms" }),
  ),
  to: t.Optional(t.String({ maxLength: 40 })),
};
const Resolution = t.Optional(t.Union(RESOLUTIONS.map((r) => t.Literal(r))));
const CHART_DEFAULT = ["cpu_usage", "mem_usage", "load_avg_1", "swap_used"];
const SYSTEM_METRICS = Object.keys(METRICS)
  .filter((m) => m.startsWith("system."))
  .map((m) => m.slice(7));

export async function agentExists(tx: Tx, id: string): Promise<void> {
  const [a] = await tx`select 1 from agents where id = ${id}`;
  if (!a) throw notFound("agent");
}

export function telemetryRoutes(deps: ApiDeps) {
  return new Elysia({ name: "api/telemetry", prefix: "/api/v1" })
    .use(guardPlugin(deps))
    .get(
      "/agents/:id/metrics",
      async ({ params, query, req }) => {
        const range = parseRange(query, deps.now());
        const names = query.metrics
          ? [...new Set(query.metrics.split(",").map((m) => m.trim()))]
          : CHART_DEFAULT;
        names.forEach((m, i) => {
          if (!SYSTEM_METRICS.includes(m))
            throw invalid(
              `query/metrics/${i}`,
              `unknown metric "${m.slice(0, 40)}"; one of: ${SYSTEM_METRICS.join(", ")}`,
            );
        });
        const wanted = pickResolution(range, query.resolution);
        const stepMs = stepFor(range, wanted);
        // the common case in one statement that PostgreSQL answers as JSON text (series.ts explains)
        const chart = await queryChartJson(
          deps.sql,
          {
            metrics: names.map((m) => `system.${m}`),
            keys: names,
            range,
            resolution: wanted,
            stepMs,
            tenantId: req.tenantId,
            agentId: params.id,
          },
          tenantRead(deps, req),
        );
        if (chart) {
          if (!chart.found) throw notFound("agent");
          const head = JSON.stringify({
            agent_id: params.id,
            from: range.from.toISOString(),
            to: range.to.toISOString(),
            resolution: chart.resolution,
            step_ms: stepFor(range, chart.resolution),
          });
          return new Response(`${head.slice(0, -1)},"columns":${chart.columns}}`, {
            headers: { "content-type": "application/json" },
          });
        }
        return inTenant(deps, req, async (tx) => {
          await agentExists(tx, params.id);
          const { resolution, series } = await querySeries(tx, {
            metrics: names.map((m) => `system.${m}`),
            range,
            resolution: wanted,
            stepMs,
            tenantId: req.tenantId,
            agentIds: [params.id],
            groupBy: "none",
          });
          const s = series[0];
          const columns: Record<string, (number | null)[]> = { time: s?.time ?? [] };
          for (const m of names) {
            const v = s?.values[`system.${m}`];
            columns[m] = v?.avg ?? [];
            columns[`${m}_min`] = v?.min ?? [];
            columns[`${m}_max`] = v?.max ?? [];
          }
          return {
            agent_id: params.id,
            from: range.from.toISOString(),
            to: range.to.toISOString(),
            resolution,
            step_ms: stepFor(range, resolution),
            columns,
          };
        });
      },
      {
        auth: "viewer",
        params: IdParams,
        query: t.Object({
          ...TimeQuery,
          resolution: Resolution,
          metrics: t.Optional(
            t.String({ maxLength: 300, description: `comma-separated: ${CHART_DEFAULT.join(",")}` }),
          ),
        }),
        detail: {
          summary: "An agent's system metrics for a chart (raw, 5-minute or hourly data picked by range)",
          tags: ["telemetry"],
        },
      },
    )
    .post(
      "/metrics/query",
      ({ body, req }) => {
        const range = parseRange(body, deps.now(), "-1h", "body");
        const resolution = pickResolution(range, body.resolution);
        const stepMs = body.step_seconds ? body.step_seconds * 1000 : stepFor(range, resolution);
        if ((range.to.getTime() - range.from.getTime()) / stepMs > 5000)
          throw invalid("body/step_seconds", "gives more than 5000 points; choose a wider step");
        body.queries.forEach((q, i) => {
          if (!METRICS[q.metric])
            throw invalid(
              `body/queries/${i}/metric`,
              `unknown metric; one of: ${Object.keys(METRICS).join(", ")}`,
            );
          if (q.group_by === "device" && !q.metric.startsWith("disk."))
            throw invalid(`body/queries/${i}/group_by`, "device grouping applies to disk.* metrics");
        });
        return inTenant(deps, req, async (tx) => {
          const results = [];
          for (const q of body.queries) {
            const r = await querySeries(tx, {
              metrics: [q.metric],
              range,
              resolution,
              stepMs,
              tenantId: req.tenantId,
              ...(q.agents ? { agentIds: q.agents } : {}),
              ...(q.tags ? { tags: q.tags } : {}),
              groupBy: (q.group_by ?? "none") as GroupBy,
            });
            const agg = q.aggregation ?? "avg";
            results.push({
              metric: q.metric,
              aggregation: agg,
              group_by: q.group_by ?? "none",
              resolution: r.resolution,
              series: r.series.map((s) => ({
                group: s.group,
                time: s.time,
                values: s.values[q.metric]?.[agg] ?? [],
              })),
            });
          }
          return { from: range.from.toISOString(), to: range.to.toISOString(), step_ms: stepMs, results };
        });
      },
      {
        auth: "viewer",
        body: t.Object(
          {
            ...TimeQuery,
            resolution: Resolution,
            step_seconds: t.Optional(t.Integer({ minimum: 60, maximum: 86400 * 31 })),
            queries: t.Array(
              t.Object(
                {
                  metric: t.String({ maxLength: 64, description: Object.keys(METRICS).join(", ") }),
                  aggregation: t.Optional(t.Union(AGGREGATIONS.map((a) => t.Literal(a)))),
                  agents: t.Optional(t.Array(t.String({ format: "uuid" }), { maxItems: 500 })),
                  tags: t.Optional(t.Array(t.String({ maxLength: 64 }), { maxItems: 20 })),
                  group_by: t.Optional(
                    t.Union([t.Literal("none"), t.Literal("agent"), t.Literal("tag"), t.Literal("device")]),
                  ),
                },
                { additionalProperties: false },
              ),
              { minItems: 1, maxItems: 20 },
            ),
          },
          { additionalProperties: false },
        ),
        detail: {
          summary: "Query several series: aggregation and grouping by agent, tag or device",
          tags: ["telemetry"],
        },
      },
    )
    .get(
      "/agents/:id/logs",
      ({ params, query, req }) => {
        const range = parseRange(query, deps.now(), "-24h");
        const limit = query.limit ?? 100;
        const offset = query.offset ?? 0;
        return inTenant(deps, req, async (tx) => {
          await agentExists(tx, params.id);
          const levels = query.level ? LEVELS.slice(LEVELS.indexOf(query.level)) : null;
          const from = tx`
            from logs
            where tenant_id = ${req.tenantId} and agent_id = ${params.id} and time >= ${range.from} and time < ${range.to}
              ${levels ? tx`and level = any(${levels as unknown as string[]}::text[])` : tx``}
              ${query.source ? tx`and source = ${query.source}` : tx``}
              ${query.q ? tx`and to_tsvector('simple', message) @@ websearch_to_tsquery('simple', ${query.q})` : tx``}`;
          const rows = await tx`
            select time, level, source, message, fields, count(*) over ()::int as total_count
            ${from}
            order by time desc limit ${limit} offset ${offset}`;
          return pastTheEnd(rows, limit, offset, () => tx`select count(*)::int as n ${from}`);
        });
      },
      {
        auth: "viewer",
        params: IdParams,
        query: t.Object({
          ...TimeQuery,
          q: t.Optional(
            t.String({ maxLength: 200, description: 'full-text: words, "phrases", -excluded, or' }),
          ),
          level: t.Optional(
            t.Union(
              LEVELS.map((l) => t.Literal(l)),
              { description: "this level and more severe" },
            ),
          ),
          source: t.Optional(t.String({ maxLength: 200 })),
          limit: t.Optional(t.Integer({ minimum: 1, maximum: 1000 })),
          offset: t.Optional(t.Integer({ minimum: 0, maximum: 100_000 })),
        }),
        detail: { summary: "An agent's logs: text search, level and time filters", tags: ["telemetry"] },
      },
    )
    .get(
      "/targets/:id/results",
      ({ params, query, req }) => {
        const range = parseRange(query, deps.now(), "-24h");
        const limit = query.limit ?? 100;
        const offset = query.offset ?? 0;
        return inTenant(deps, req, async (tx) => {
          const [tg] = await tx`select 1 from targets where id = ${params.id}`;
          if (!tg) throw notFound("target");
          const from = tx`
            from scan_results
            where tenant_id = ${req.tenantId} and target_id = ${params.id} and time >= ${range.from} and time < ${range.to}
              ${query.test_type ? tx`and test_type = ${query.test_type}` : tx``}
              ${query.success === undefined ? tx`` : tx`and success = ${query.success}`}
              ${query.probe_id ? tx`and probe_id = ${query.probe_id}` : tx``}`;
          const rows = await tx`
            select time, probe_id, test_type, success, error_message, latency_ms, packet_loss, result_data,
                   count(*) over ()::int as total_count
            ${from}
            order by time desc limit ${limit} offset ${offset}`;
          return pastTheEnd(rows, limit, offset, () => tx`select count(*)::int as n ${from}`);
        });
      },
      {
        auth: "viewer",
        params: IdParams,
        query: t.Object({
          ...TimeQuery,
          test_type: t.Optional(t.String({ maxLength: 32 })),
          success: t.Optional(t.Boolean()),
          probe_id: t.Optional(t.String({ format: "uuid" })),
          limit: t.Optional(t.Integer({ minimum: 1, maximum: 1000 })),
          offset: t.Optional(t.Integer({ minimum: 0, maximum: 100_000 })),
        }),
        detail: { summary: "Scan results of a target", tags: ["telemetry"] },
      },
    );
}
