/**
 * Decoded payloads → COPY lines, one converter per kind, validating each row (validate.ts). Tenant and source
 * ids come from the batch envelope (the sender's certificate, via the gateway), never from the payload.
 */
import type { LogsPayload, MetricsPayload, ScanResultsPayload, SnmpPayload } from "../protocol/index.ts";
import { logLevelName } from "../protocol/index.ts";
import { BinaryRows, bool, float, json, NULL, text, time, uuidBytes } from "./copy.ts";
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

import { COLUMNS, type CopyTable } from "./columns.ts";

/** A batch's rows per table: COPY text lines, or rows already in COPY binary format (metrics tables). */
export class TableLines {
  readonly lines = new Map<CopyTable, string[]>();
  readonly binary = new Map<CopyTable, BinaryRows>();
  add(table: CopyTable, line: string): void {
    let l = this.lines.get(table);
    if (!l) {
      l = [];
      this.lines.set(table, l);
    }
    l.push(line);
  }
  /** The binary rows of `table` (created empty on first use). */
  bin(table: CopyTable): BinaryRows {
    let b = this.binary.get(table);
    if (!b) {
      b = new BinaryRows();
      this.binary.set(table, b);
    }
    return b;
  }
  get rows(): number {
    let n = 0;
    for (const l of this.lines.values()) n += l.length;
    for (const b of this.binary.values()) n += b.rows;
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

/** Writes each item as one binary row, dropping (and counting) the ones that throw RowRejected. */
function eachBinary<T>(
  items: T[] | undefined,
  out: TableLines,
  table: CopyTable,
  tally: RejectTally,
  fn: (b: BinaryRows, x: T) => void,
): void {
  if (!items || items.length === 0) return;
  const b = out.bin(table);
  const fields = COLUMNS[table].length;
  for (const x of items) {
    try {
      b.begin(fields);
      fn(b, x);
      b.end();
    } catch (e) {
      if (!(e instanceof RowRejected)) throw e;
      b.abort();
      tally.add(table, e.reason);
    }
  }
}

/** Metrics rows in COPY binary format (src/telemetry/copy.ts); columns in the order of COLUMNS. */
export function metricsRows(p: MetricsPayload, src: Source, w: TimeWindow, tally: RejectTally): TableLines {
  const out = new TableLines();
  const tenant = uuidBytes(src.tenantId);
  const agent = uuidBytes(src.sourceId);
  eachBinary(p.system, out, "system_metrics", tally, (b, m) => {
    const t = checkTime(m.time_unix_ms, w);
    b.time(t).uuid(tenant).uuid(agent);
    b.float8(percent(m.cpu_usage)).float8(percent(m.cpu_user)).float8(percent(m.cpu_system));
    b.float8(percent(m.cpu_iowait)).float8(nonNegative(m.load_avg_1)).float8(nonNegative(m.load_avg_5));
    b.float8(nonNegative(m.load_avg_15)).int8(counter(m.mem_total)).int8(counter(m.mem_used));
    b.int8(counter(m.mem_available)).int8(counter(m.mem_cached)).int8(counter(m.swap_used));
    let extra = "{}";
    if (m.extra && Object.keys(m.extra).length > 0) {
      for (const v of Object.values(m.extra)) finite(v);
      extra = JSON.stringify(m.extra);
    }
    b.jsonb(extra);
  });
  eachBinary(p.disks, out, "disk_metrics", tally, (b, d) => {
    const t = checkTime(d.time_unix_ms, w);
    b.time(t)
      .uuid(tenant)
      .uuid(agent)
      .text(required(d.device))
      .text(d.mountpoint || null);
    b.int8(counter(d.total_bytes)).int8(counter(d.used_bytes)).float8(percent(d.usage_percent));
    b.int8(counter(d.read_bytes)).int8(counter(d.write_bytes)).int8(counter(d.read_ops));
    b.int8(counter(d.write_ops)).float8(nonNegative(d.read_latency)).float8(nonNegative(d.write_latency));
  });
  eachBinary(p.networks, out, "network_metrics", tally, (b, n) => {
    const t = checkTime(n.time_unix_ms, w);
    b.time(t).uuid(tenant).uuid(agent).text(required(n.interface));
    b.int8(counter(n.rx_bytes)).int8(counter(n.tx_bytes)).int8(counter(n.rx_packets));
    b.int8(counter(n.tx_packets)).int8(counter(n.rx_errors)).int8(counter(n.tx_errors));
  });
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
