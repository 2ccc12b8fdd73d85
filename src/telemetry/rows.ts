/**
 * Decoded payloads → COPY lines, one converter per kind, validating each row (validate.ts). Tenant and source
 * ids come from the batch envelope (the sender's certificate, via the gateway), never from the payload.
 */
import type { LogsPayload, MetricsPayload, ScanResultsPayload, SnmpPayload } from "../protocol/index.ts";
import { logLevelName } from "../protocol/index.ts";
import { bool, float, int, json, NULL, text, time } from "./copy.ts";
import {
  checkTime,
  counter,
  finite,
  isUuid,
  nonNegative,
  percent,
  type RejectTally,
  RowRejected,
  required,
  type TimeWindow,
} from "./validate.ts";

export { COLUMNS, type CopyTable } from "./columns.ts";

import type { CopyTable } from "./columns.ts";

/** COPY lines per table, accumulated over the batches of one write. */
export class TableLines {
  readonly lines = new Map<CopyTable, string[]>();
  add(table: CopyTable, line: string): void {
    let l = this.lines.get(table);
    if (!l) {
      l = [];
      this.lines.set(table, l);
    }
    l.push(line);
  }
  get rows(): number {
    let n = 0;
    for (const l of this.lines.values()) n += l.length;
    return n;
  }
}

export interface Source {
  tenantId: string;
  sourceId: string;
}

/** Converts each item, dropping (and counting) the ones that throw RowRejected. Returns rows kept. */
function each<T>(
  items: T[] | undefined,
  table: CopyTable,
  tally: RejectTally,
  fn: (x: T) => string,
): string[] {
  const out: string[] = [];
  if (!items) return out;
  for (const x of items) {
    try {
      out.push(fn(x));
    } catch (e) {
      if (!(e instanceof RowRejected)) throw e;
      tally.add(table, e.reason);
    }
  }
  return out;
}

export function metricsRows(p: MetricsPayload, src: Source, w: TimeWindow, tally: RejectTally): TableLines {
  const out = new TableLines();
  const ids = `${src.tenantId}\t${src.sourceId}`;
  for (const l of each(p.system, "system_metrics", tally, (m) => {
    const t = checkTime(m.time_unix_ms, w);
    let extra = "{}";
    if (m.extra && Object.keys(m.extra).length > 0) {
      for (const v of Object.values(m.extra)) finite(v);
      extra = json(m.extra);
    }
    return `${time(t)}\t${ids}\t${float(percent(m.cpu_usage))}\t${float(percent(m.cpu_user))}\t${float(
      percent(m.cpu_system),
    )}\t${float(percent(m.cpu_iowait))}\t${float(nonNegative(m.load_avg_1))}\t${float(
      nonNegative(m.load_avg_5),
    )}\t${float(nonNegative(m.load_avg_15))}\t${int(counter(m.mem_total))}\t${int(counter(m.mem_used))}\t${int(
      counter(m.mem_available),
    )}\t${int(counter(m.mem_cached))}\t${int(counter(m.swap_used))}\t${extra}\n`;
  }))
    out.add("system_metrics", l);
  for (const l of each(p.disks, "disk_metrics", tally, (d) => {
    const t = checkTime(d.time_unix_ms, w);
    return `${time(t)}\t${ids}\t${text(required(d.device))}\t${d.mountpoint ? text(d.mountpoint) : NULL}\t${int(
      counter(d.total_bytes),
    )}\t${int(counter(d.used_bytes))}\t${float(percent(d.usage_percent))}\t${int(counter(d.read_bytes))}\t${int(
      counter(d.write_bytes),
    )}\t${int(counter(d.read_ops))}\t${int(counter(d.write_ops))}\t${float(nonNegative(d.read_latency))}\t${float(
      nonNegative(d.write_latency),
    )}\n`;
  }))
    out.add("disk_metrics", l);
  for (const l of each(p.networks, "network_metrics", tally, (n) => {
    const t = checkTime(n.time_unix_ms, w);
    return `${time(t)}\t${ids}\t${text(required(n.interface))}\t${int(counter(n.rx_bytes))}\t${int(
      counter(n.tx_bytes),
    )}\t${int(counter(n.rx_packets))}\t${int(counter(n.tx_packets))}\t${int(counter(n.rx_errors))}\t${int(
      counter(n.tx_errors),
    )}\n`;
  }))
    out.add("network_metrics", l);
  return out;
}

/** Is `targetId` a target of `tenantId`? (answered from a cache loaded before conversion) */
export type TargetCheck = (tenantId: string, targetId: string) => boolean;

function target(src: Source, id: string, isTarget: TargetCheck): string {
  if (!isUuid(id)) throw new RowRejected("bad_target");
  const lower = id.toLowerCase();
  if (!isTarget(src.tenantId, lower)) throw new RowRejected("unknown_target");
  return lower;
}

export function scanRows(
  p: ScanResultsPayload,
  src: Source,
  w: TimeWindow,
  tally: RejectTally,
  isTarget: TargetCheck,
): TableLines {
  const out = new TableLines();
  for (const l of each(p.results, "scan_results", tally, (r) => {
    const t = checkTime(r.time_unix_ms, w);
    const tgt = target(src, r.target_id, isTarget);
    let data = "{}";
    if (r.result_json && r.result_json.trim() !== "") {
      let parsed: unknown;
      try {
        parsed = JSON.parse(r.result_json);
      } catch {
        throw new RowRejected("bad_json");
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
        throw new RowRejected("bad_json");
      data = json(parsed);
    }
    return `${time(t)}\t${src.tenantId}\t${src.sourceId}\t${tgt}\t${text(required(r.test_type))}\t${bool(
      r.success === true,
    )}\t${r.error_message ? text(r.error_message) : NULL}\t${float(nonNegative(r.latency_ms))}\t${float(
      percent(r.packet_loss),
    )}\t${data}\n`;
  }))
    out.add("scan_results", l);
  return out;
}

export function snmpRows(
  p: SnmpPayload,
  src: Source,
  w: TimeWindow,
  tally: RejectTally,
  isTarget: TargetCheck,
): TableLines {
  const out = new TableLines();
  for (const l of each(p.samples, "snmp_metrics", tally, (s) => {
    const t = checkTime(s.time_unix_ms, w);
    const tgt = target(src, s.target_id, isTarget);
    return `${time(t)}\t${src.tenantId}\t${src.sourceId}\t${tgt}\t${text(required(s.oid))}\t${
      s.oid_name ? text(s.oid_name) : NULL
    }\t${s.value_type ? text(s.value_type) : NULL}\t${float(finite(s.value_numeric))}\t${text(s.value_string)}\n`;
  }))
    out.add("snmp_metrics", l);
  return out;
}

/** One stored log line, kept for the Loki push after commit. */
export interface LogLine {
  timeMs: number;
  level: string;
  source: string;
  message: string;
}

export function logRows(
  p: LogsPayload,
  src: Source,
  w: TimeWindow,
  tally: RejectTally,
  maxLineBytes: number,
  keep?: LogLine[],
): TableLines {
  const out = new TableLines();
  for (const l of each(p.entries, "logs", tally, (e) => {
    const t = checkTime(e.time_unix_ms, w);
    const level = logLevelName(e.level ?? 0);
    const message = truncateUtf8(e.message ?? "", maxLineBytes);
    const source = e.source ?? "";
    keep?.push({ timeMs: t, level, source, message });
    const fields = e.fields && Object.keys(e.fields).length > 0 ? json(e.fields) : "{}";
    return `${time(t)}\t${src.tenantId}\t${src.sourceId}\t${level}\t${text(source)}\t${text(message)}\t${fields}\n`;
  }))
    out.add("logs", l);
  return out;
}

/** At most `max` UTF-8 bytes, cut on a character boundary. */
export function truncateUtf8(s: string, max: number): string {
  if (s.length * 3 <= max) return s;
  const bytes = Buffer.from(s, "utf8");
  if (bytes.length <= max) return s;
  let end = max;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8");
}
