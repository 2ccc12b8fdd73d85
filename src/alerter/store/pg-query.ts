/**
 * The query port over PostgreSQL: one aggregate query per (telemetry table, time range) covering every
 * field and tenant the cycle needs (the evaluator batches its needs), run as secumon_admin since the
 * alerter works across tenants. Column names are those of migrations/020_telemetry.sql (the seed's).
 */
import type { Sql } from "postgres";
import { withAdmin } from "../../storage/db.ts";
import type { QueryPort, RangeRequest, SeriesStats, TenantEntities } from "../engine/query.ts";
import { emptyEntities } from "../engine/query.ts";
import { SOURCES } from "../rules/metrics.ts";
import type { Source } from "../rules/types.ts";
import { getOrSet } from "../util.ts";

/** SQL expression (double precision) for a field; fields are checked against SOURCES before reaching here. */
function fieldExpr(source: Source, field: string): string {
  if (source === "system" && field === "mem_usage_percent")
    return "(mem_used::float8 * 100 / NULLIF(mem_total, 0))";
  if (source === "scan" && field === "success") return "(CASE WHEN success THEN 1.0 ELSE 0.0 END)::float8";
  const allowed = SOURCES[source].fields;
  if (!allowed?.includes(field)) throw new Error(`no column for ${source}.${field}`);
  return `${field}::float8`;
}

const LABEL_EXPR: Record<string, string> = {
  agent_id: "agent_id::text",
  probe_id: "probe_id::text",
  target_id: "target_id::text",
  device: "device",
  mountpoint: "coalesce(mountpoint, '')",
  interface: "interface",
  test_type: "test_type",
  oid_name: "coalesce(oid_name, '')",
};

function statsColumns(expr: string, i: number): string {
  const nn = `FILTER (WHERE ${expr} IS NOT NULL)`;
  return [
    `count(${expr}) AS n${i}`,
    `sum(${expr}) AS s${i}`,
    `sum(${expr} * ${expr}) AS q${i}`,
    `min(${expr}) AS mn${i}`,
    `max(${expr}) AS mx${i}`,
    `(array_agg(${expr} ORDER BY time) ${nn})[1] AS f${i}`,
    `(array_agg(${expr} ORDER BY time DESC) ${nn})[1] AS l${i}`,
    `(extract(epoch FROM min(time) ${nn}) * 1000)::float8 AS ft${i}`,
    `(extract(epoch FROM max(time) ${nn}) * 1000)::float8 AS lt${i}`,
  ].join(", ");
}

type Row = Record<string, string | number | null>;

export class PgQueryPort implements QueryPort {
  constructor(private readonly sql: Sql) {}

  range(requests: RangeRequest[]): Promise<SeriesStats[][]> {
    return Promise.all(requests.map((r) => this.one(r)));
  }

  private async one(r: RangeRequest): Promise<SeriesStats[]> {
    const info = SOURCES[r.source];
    const labels = info.seriesLabels;
    const labelSql = labels.map((l) => `${LABEL_EXPR[l]} AS ${l}`).join(", ");
    const groupSql = labels.map((_, i) => String(i + 2)).join(", ");
    const params: unknown[] = [r.tenantIds, new Date(r.from), new Date(r.to)];
    let text: string;
    let fieldsOut: string[];
    if (r.source === "snmp") {
      // one value column; the field is the oid name, which is a group key
      params.push(r.fields);
      text = `SELECT tenant_id::text AS tenant_id, ${labelSql}, ${statsColumns("value_numeric", 0)}
        FROM snmp_metrics
        WHERE tenant_id = ANY($1::uuid[]) AND time > $2 AND time <= $3 AND oid_name = ANY($4::text[])
        GROUP BY 1, ${groupSql}`;
      fieldsOut = ["oid_name"];
    } else {
      const cols = r.fields.map((f, i) => statsColumns(fieldExpr(r.source, f), i)).join(", ");
      text = `SELECT tenant_id::text AS tenant_id, ${labelSql}, ${cols}
        FROM ${info.table}
        WHERE tenant_id = ANY($1::uuid[]) AND time > $2 AND time <= $3
        GROUP BY 1, ${groupSql}`;
      fieldsOut = r.fields;
    }
    const rows = (await withAdmin(this.sql, (tx) => tx.unsafe(text, params as never[]))) as unknown as Row[];
    const out: SeriesStats[] = [];
    for (const row of rows) {
      const lab: Record<string, string> = {};
      for (const l of labels) lab[l] = String(row[l] ?? "");
      fieldsOut.forEach((f, i) => {
        const n = Number(row[`n${i}`] ?? 0);
        if (n === 0) return;
        out.push({
          tenantId: String(row.tenant_id),
          labels: lab,
          field: r.source === "snmp" ? (lab.oid_name ?? "") : f,
          stats: {
            n,
            sum: Number(row[`s${i}`]),
            sumSq: Number(row[`q${i}`]),
            min: Number(row[`mn${i}`]),
            max: Number(row[`mx${i}`]),
            first: Number(row[`f${i}`]),
            last: Number(row[`l${i}`]),
            firstT: Number(row[`ft${i}`]),
            lastT: Number(row[`lt${i}`]),
          },
        });
      });
    }
    return out;
  }

  async entities(tenantIds: string[]): Promise<Map<string, TenantEntities>> {
    const out = new Map<string, TenantEntities>(tenantIds.map((t) => [t, emptyEntities()]));
    if (tenantIds.length === 0) return out;
    const [rows, pairs] = await withAdmin(this.sql, async (tx) => [
      await tx<
        {
          tenant_id: string;
          kind: "agents" | "probes" | "targets";
          id: string;
          name: string;
          tags: string[];
          created: number;
          status: string;
        }[]
      >`
        SELECT tenant_id::text, 'agents' AS kind, id::text, name, tags, (extract(epoch FROM created_at) * 1000)::float8 AS created, status
          FROM agents WHERE tenant_id = ANY(${tenantIds}::uuid[])
        UNION ALL
        SELECT tenant_id::text, 'probes', id::text, name, tags, (extract(epoch FROM created_at) * 1000)::float8, status
          FROM probes WHERE tenant_id = ANY(${tenantIds}::uuid[])
        UNION ALL
        SELECT tenant_id::text, 'targets', id::text, name, tags, (extract(epoch FROM created_at) * 1000)::float8,
               CASE WHEN enabled THEN 'online' ELSE 'disabled' END
          FROM targets WHERE tenant_id = ANY(${tenantIds}::uuid[])`,
      await tx<{ tenant_id: string; target_id: string; probe_id: string }[]>`
        SELECT tenant_id::text, target_id::text, probe_id::text FROM target_probes WHERE tenant_id = ANY(${tenantIds}::uuid[])`,
    ]);
    for (const r of rows) {
      getOrSet(out, r.tenant_id, emptyEntities)[r.kind].set(r.id, {
        id: r.id,
        name: r.name,
        tags: r.tags,
        createdAt: Number(r.created),
        status: r.status,
      });
    }
    for (const p of pairs)
      getOrSet(out, p.tenant_id, emptyEntities).targetProbes.push([p.target_id, p.probe_id]);
    return out;
  }
}
