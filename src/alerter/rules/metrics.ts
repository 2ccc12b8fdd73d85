/**
 * Metric addressing: `<source>.<field>{label matchers}` → which telemetry table and column a condition reads,
 * and which labels identify a series there. Pure; the Postgres query port maps sources to SQL.
 */
import { COLUMNS, type CopyTable } from "../../telemetry/columns.ts";
import { formatMatchers, parseMatchers } from "./matchers.ts";
import type { MetricRef, Source } from "./types.ts";

export interface SourceInfo {
  table: string;
  /** Labels that identify one series of this source (its GROUP BY columns besides tenant_id). */
  seriesLabels: readonly string[];
  /** Numeric fields (columns); null = any name (snmp: the oid_name). */
  fields: readonly string[] | null;
  /** The entity a series belongs to, for scopes and absent rules. */
  entity: "agent" | "probe_target" | "target";
}

/** Columns that identify a row rather than measure something. */
const KEY_COLUMNS: ReadonlySet<string> = new Set([
  "time",
  "tenant_id",
  "agent_id",
  "probe_id",
  "target_id",
  "extra",
]);

/** The numeric fields of a table: every written column but its keys and series labels. */
const measured = (table: CopyTable, labels: readonly string[]): string[] =>
  COLUMNS[table].filter((c) => !KEY_COLUMNS.has(c) && !labels.includes(c));

export const SOURCES: Readonly<Record<Source, SourceInfo>> = {
  system: {
    table: "system_metrics",
    seriesLabels: ["agent_id"],
    fields: [...measured("system_metrics", []), "mem_usage_percent"], // derived: 100 × mem_used / mem_total
    entity: "agent",
  },
  disk: {
    table: "disk_metrics",
    seriesLabels: ["agent_id", "device", "mountpoint"],
    fields: measured("disk_metrics", ["device", "mountpoint"]),
    entity: "agent",
  },
  network: {
    table: "network_metrics",
    seriesLabels: ["agent_id", "interface"],
    fields: measured("network_metrics", ["interface"]),
    entity: "agent",
  },
  scan: {
    table: "scan_results",
    seriesLabels: ["probe_id", "target_id", "test_type"],
    fields: ["latency_ms", "packet_loss", "success"], // success: 1 or 0
    entity: "probe_target",
  },
  snmp: {
    table: "snmp_metrics",
    seriesLabels: ["probe_id", "target_id", "oid_name"],
    fields: null,
    entity: "target",
  },
};

const HEAD = /^([a-z]+)\.([A-Za-z_][A-Za-z0-9_.:-]*)$/;

/** Parses a metric reference; throws an Error saying what is wrong and what is accepted. */
export function parseMetric(text: string): MetricRef {
  if (typeof text !== "string" || text.trim() === "")
    throw new Error('metric is required, e.g. "system.cpu_usage"');
  const t = text.trim();
  const brace = t.indexOf("{");
  const head = brace < 0 ? t : t.slice(0, brace).trim();
  let matchers: MetricRef["matchers"] = [];
  if (brace >= 0) {
    if (!t.endsWith("}")) throw new Error(`metric ${JSON.stringify(t)}: label matchers must end with }`);
    matchers = parseMatchers(t.slice(brace + 1, -1));
  }
  const m = HEAD.exec(head);
  if (!m)
    throw new Error(
      `metric ${JSON.stringify(t)} must look like <source>.<field>, e.g. system.cpu_usage or disk.usage_percent{mountpoint="/"}`,
    );
  const source = m[1] as Source;
  const info = SOURCES[source];
  if (!info)
    throw new Error(`unknown metric source "${m[1]}": use one of ${Object.keys(SOURCES).join(", ")}`);
  const field = m[2] as string;
  if (info.fields && !info.fields.includes(field))
    throw new Error(`unknown metric "${source}.${field}": ${source}.* has ${info.fields.join(", ")}`);
  for (const x of matchers) {
    if (!info.seriesLabels.includes(x.name) && !(source === "snmp" && x.name === "oid"))
      throw new Error(
        `metric ${source}.${field} has no label "${x.name}": its labels are ${info.seriesLabels.join(", ")}`,
      );
  }
  return { text: `${source}.${field}${formatMatchers(matchers)}`, source, field, matchers };
}
