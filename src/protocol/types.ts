/**
 * TypeScript shapes of the decoded telemetry payloads (telemetry.proto), snake_case like the .proto and the
 * database columns. `?` marks proto3 `optional` fields: absent = not measured = NULL. When decoding, 64-bit
 * integers are numbers unless `{ longs: "string" }` was asked for (then `Long` below is a string).
 */
import type { TelemetryKind } from "../bus/telemetry.ts";

export type Long = number | string;

export interface SystemMetric {
  time_unix_ms: Long;
  cpu_usage?: number;
  cpu_user?: number;
  cpu_system?: number;
  cpu_iowait?: number;
  load_avg_1?: number;
  load_avg_5?: number;
  load_avg_15?: number;
  mem_total?: Long;
  mem_used?: Long;
  mem_available?: Long;
  mem_cached?: Long;
  swap_used?: Long;
  extra?: Record<string, number>;
}

export interface DiskMetric {
  time_unix_ms: Long;
  device: string;
  mountpoint?: string;
  total_bytes?: Long;
  used_bytes?: Long;
  usage_percent?: number;
  read_bytes?: Long;
  write_bytes?: Long;
  read_ops?: Long;
  write_ops?: Long;
  read_latency?: number;
  write_latency?: number;
}

export interface NetworkMetric {
  time_unix_ms: Long;
  interface: string;
  rx_bytes?: Long;
  tx_bytes?: Long;
  rx_packets?: Long;
  tx_packets?: Long;
  rx_errors?: Long;
  tx_errors?: Long;
}

export interface MetricsPayload {
  system?: SystemMetric[];
  disks?: DiskMetric[];
  networks?: NetworkMetric[];
}

export interface LogEntry {
  time_unix_ms: Long;
  /** LogLevel enum number: 0 unspecified, 1 debug … 8 emergency (see logLevelName). */
  level?: number;
  source?: string;
  message?: string;
  fields?: Record<string, string>;
}

export interface LogsPayload {
  entries?: LogEntry[];
}

export interface OsInfo {
  hostname?: string;
  name?: string;
  version?: string;
  kernel?: string;
  arch?: string;
  boot_time_unix_ms?: Long;
}

export interface Package {
  name: string;
  version?: string;
  arch?: string;
  manager?: string;
}

export interface ServiceInfo {
  name: string;
  state?: string;
  enabled?: boolean;
}

export interface OpenPort {
  protocol?: string;
  address?: string;
  port?: number;
  process?: string;
  pid?: number;
}

export interface InventoryPayload {
  time_unix_ms: Long;
  /** absent when the agent sent no OS section (message fields are not defaulted) */
  os?: OsInfo | null;
  packages?: Package[];
  services?: ServiceInfo[];
  ports?: OpenPort[];
}

export interface ScanResult {
  time_unix_ms: Long;
  target_id: string;
  test_type: string;
  success?: boolean;
  error_message?: string;
  latency_ms?: number;
  packet_loss?: number;
  result_json?: string;
}

export interface ScanResultsPayload {
  results?: ScanResult[];
}

export interface SnmpSample {
  time_unix_ms: Long;
  target_id: string;
  oid: string;
  oid_name?: string;
  value_type?: string;
  value_numeric?: number;
  value_string?: string;
}

export interface SnmpPayload {
  samples?: SnmpSample[];
}

export interface PayloadByKind {
  metrics: MetricsPayload;
  logs: LogsPayload;
  inventory: InventoryPayload;
  scans: ScanResultsPayload;
  snmp: SnmpPayload;
}

/** Decoded objects always have arrays/maps present and non-optional scalars defaulted. */
export type PayloadFor<K extends TelemetryKind> = PayloadByKind[K];
