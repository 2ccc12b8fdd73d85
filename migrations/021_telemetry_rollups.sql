-- 021_telemetry_rollups: the 5-minute and 1-hour rollups, as tables kept by an incremental, idempotent job
-- (src/maintenance/rollups.ts) in both storage modes (020 explains why not continuous aggregates).
--
-- Names and the seed's columns are kept (system_metrics_5m/1h: bucket, tenant_id, agent_id, cpu_usage_avg,
-- cpu_usage_max, mem_usage_avg, load_avg_1, and cpu_usage_min), plus `samples` and a few more columns; the
-- disk, network and scan-result rollups follow the same pattern. Buckets: date_bin('5 minutes') and
-- date_trunc('hour') in UTC, which equal timescale's time_bucket for these widths.
--
-- secumon_refresh_rollup(name, from, to) recomputes every bucket starting in [from, to) from the raw rows and
-- upserts it: running it twice, or over overlapping windows, gives the same rows. Counters (bytes, packets,
-- operations) are stored as their min and max within the bucket, so the API can derive increases.

SELECT secumon_create_time_table('system_metrics_5m', $cols$
  bucket        timestamptz NOT NULL,
  tenant_id     uuid NOT NULL,
  agent_id      uuid NOT NULL,
  samples       integer NOT NULL,
  cpu_usage_avg double precision,
  cpu_usage_max double precision,
  cpu_usage_min double precision,
  mem_usage_avg double precision,
  mem_usage_max double precision,
  load_avg_1    double precision,
  load_avg_1_max double precision,
  swap_used_max bigint,
  PRIMARY KEY (tenant_id, agent_id, bucket)
$cols$, 'bucket', 'day', 'rollup_5m');

SELECT secumon_create_time_table('system_metrics_1h', $cols$
  bucket        timestamptz NOT NULL,
  tenant_id     uuid NOT NULL,
  agent_id      uuid NOT NULL,
  samples       integer NOT NULL,
  cpu_usage_avg double precision,
  cpu_usage_max double precision,
  cpu_usage_min double precision,
  mem_usage_avg double precision,
  mem_usage_max double precision,
  load_avg_1    double precision,
  load_avg_1_max double precision,
  swap_used_max bigint,
  PRIMARY KEY (tenant_id, agent_id, bucket)
$cols$, 'bucket', 'month', 'rollup_1h');

SELECT secumon_create_time_table(t, $cols$
  bucket            timestamptz NOT NULL,
  tenant_id         uuid NOT NULL,
  agent_id          uuid NOT NULL,
  device            text NOT NULL,
  samples           integer NOT NULL,
  usage_percent_avg double precision,
  usage_percent_max double precision,
  used_bytes_avg    double precision,
  total_bytes_max   bigint,
  read_bytes_min    bigint,
  read_bytes_max    bigint,
  write_bytes_min   bigint,
  write_bytes_max   bigint,
  read_ops_min      bigint,
  read_ops_max      bigint,
  write_ops_min     bigint,
  write_ops_max     bigint,
  read_latency_avg  double precision,
  write_latency_avg double precision,
  PRIMARY KEY (tenant_id, agent_id, device, bucket)
$cols$, 'bucket', s, r)
FROM (VALUES ('disk_metrics_5m', 'day', 'rollup_5m'), ('disk_metrics_1h', 'month', 'rollup_1h')) v (t, s, r);

SELECT secumon_create_time_table(t, $cols$
  bucket         timestamptz NOT NULL,
  tenant_id      uuid NOT NULL,
  agent_id       uuid NOT NULL,
  interface      text NOT NULL,
  samples        integer NOT NULL,
  rx_bytes_min   bigint,
  rx_bytes_max   bigint,
  tx_bytes_min   bigint,
  tx_bytes_max   bigint,
  rx_packets_min bigint,
  rx_packets_max bigint,
  tx_packets_min bigint,
  tx_packets_max bigint,
  rx_errors_max  bigint,
  tx_errors_max  bigint,
  PRIMARY KEY (tenant_id, agent_id, interface, bucket)
$cols$, 'bucket', s, r)
FROM (VALUES ('network_metrics_5m', 'day', 'rollup_5m'), ('network_metrics_1h', 'month', 'rollup_1h')) v (t, s, r);

SELECT secumon_create_time_table(t, $cols$
  bucket          timestamptz NOT NULL,
  tenant_id       uuid NOT NULL,
  probe_id        uuid NOT NULL,
  target_id       uuid NOT NULL,
  test_type       text NOT NULL,
  checks          integer NOT NULL,
  successes       integer NOT NULL,
  latency_ms_avg  double precision,
  latency_ms_min  double precision,
  latency_ms_max  double precision,
  packet_loss_avg double precision,
  PRIMARY KEY (tenant_id, probe_id, target_id, test_type, bucket)
$cols$, 'bucket', s, r)
FROM (VALUES ('scan_results_5m', 'day', 'rollup_5m'), ('scan_results_1h', 'month', 'rollup_1h')) v (t, s, r);

-- How far each rollup has been computed (complete buckets before done_until).
CREATE TABLE rollup_progress (
  name       text PRIMARY KEY REFERENCES telemetry_tables (name) ON DELETE CASCADE,
  done_until timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Recomputes the buckets of rollup `rollup` starting in [from_ts, to_ts) from the raw table (idempotent).
-- from_ts/to_ts must be bucket-aligned (the job aligns them). Returns the number of buckets written.
CREATE FUNCTION secumon_refresh_rollup(rollup text, from_ts timestamptz, to_ts timestamptz) RETURNS bigint
  LANGUAGE plpgsql
  AS $$
DECLARE
  b text;
  n bigint;
BEGIN
  b := CASE
    WHEN rollup LIKE '%\_5m' THEN 'date_bin(interval ''5 minutes'', time, timestamptz ''2000-01-01 00:00:00+00'')'
    WHEN rollup LIKE '%\_1h' THEN 'date_bin(interval ''1 hour'', time, timestamptz ''2000-01-01 00:00:00+00'')'
  END;
  IF rollup IN ('system_metrics_5m', 'system_metrics_1h') THEN
    EXECUTE format($q$
      INSERT INTO %I AS r (bucket, tenant_id, agent_id, samples, cpu_usage_avg, cpu_usage_max, cpu_usage_min,
                           mem_usage_avg, mem_usage_max, load_avg_1, load_avg_1_max, swap_used_max)
      SELECT %s, tenant_id, agent_id, count(*), avg(cpu_usage), max(cpu_usage), min(cpu_usage),
             avg(mem_used::float8 / NULLIF(mem_total, 0) * 100), max(mem_used::float8 / NULLIF(mem_total, 0) * 100),
             avg(load_avg_1), max(load_avg_1), max(swap_used)
      FROM system_metrics WHERE time >= $1 AND time < $2
      GROUP BY 1, 2, 3
      ON CONFLICT (tenant_id, agent_id, bucket) DO UPDATE SET
        samples = EXCLUDED.samples, cpu_usage_avg = EXCLUDED.cpu_usage_avg, cpu_usage_max = EXCLUDED.cpu_usage_max,
        cpu_usage_min = EXCLUDED.cpu_usage_min, mem_usage_avg = EXCLUDED.mem_usage_avg,
        mem_usage_max = EXCLUDED.mem_usage_max, load_avg_1 = EXCLUDED.load_avg_1,
        load_avg_1_max = EXCLUDED.load_avg_1_max, swap_used_max = EXCLUDED.swap_used_max
    $q$, rollup, b) USING from_ts, to_ts;
  ELSIF rollup IN ('disk_metrics_5m', 'disk_metrics_1h') THEN
    EXECUTE format($q$
      INSERT INTO %I AS r (bucket, tenant_id, agent_id, device, samples, usage_percent_avg, usage_percent_max,
                           used_bytes_avg, total_bytes_max, read_bytes_min, read_bytes_max, write_bytes_min,
                           write_bytes_max, read_ops_min, read_ops_max, write_ops_min, write_ops_max,
                           read_latency_avg, write_latency_avg)
      SELECT %s, tenant_id, agent_id, device, count(*), avg(usage_percent), max(usage_percent), avg(used_bytes),
             max(total_bytes), min(read_bytes), max(read_bytes), min(write_bytes), max(write_bytes),
             min(read_ops), max(read_ops), min(write_ops), max(write_ops), avg(read_latency), avg(write_latency)
      FROM disk_metrics WHERE time >= $1 AND time < $2
      GROUP BY 1, 2, 3, 4
      ON CONFLICT (tenant_id, agent_id, device, bucket) DO UPDATE SET
        samples = EXCLUDED.samples, usage_percent_avg = EXCLUDED.usage_percent_avg,
        usage_percent_max = EXCLUDED.usage_percent_max, used_bytes_avg = EXCLUDED.used_bytes_avg,
        total_bytes_max = EXCLUDED.total_bytes_max, read_bytes_min = EXCLUDED.read_bytes_min,
        read_bytes_max = EXCLUDED.read_bytes_max, write_bytes_min = EXCLUDED.write_bytes_min,
        write_bytes_max = EXCLUDED.write_bytes_max, read_ops_min = EXCLUDED.read_ops_min,
        read_ops_max = EXCLUDED.read_ops_max, write_ops_min = EXCLUDED.write_ops_min,
        write_ops_max = EXCLUDED.write_ops_max, read_latency_avg = EXCLUDED.read_latency_avg,
        write_latency_avg = EXCLUDED.write_latency_avg
    $q$, rollup, b) USING from_ts, to_ts;
  ELSIF rollup IN ('network_metrics_5m', 'network_metrics_1h') THEN
    EXECUTE format($q$
      INSERT INTO %I AS r (bucket, tenant_id, agent_id, interface, samples, rx_bytes_min, rx_bytes_max,
                           tx_bytes_min, tx_bytes_max, rx_packets_min, rx_packets_max, tx_packets_min,
                           tx_packets_max, rx_errors_max, tx_errors_max)
      SELECT %s, tenant_id, agent_id, interface, count(*), min(rx_bytes), max(rx_bytes), min(tx_bytes),
             max(tx_bytes), min(rx_packets), max(rx_packets), min(tx_packets), max(tx_packets), max(rx_errors),
             max(tx_errors)
      FROM network_metrics WHERE time >= $1 AND time < $2
      GROUP BY 1, 2, 3, 4
      ON CONFLICT (tenant_id, agent_id, interface, bucket) DO UPDATE SET
        samples = EXCLUDED.samples, rx_bytes_min = EXCLUDED.rx_bytes_min, rx_bytes_max = EXCLUDED.rx_bytes_max,
        tx_bytes_min = EXCLUDED.tx_bytes_min, tx_bytes_max = EXCLUDED.tx_bytes_max,
        rx_packets_min = EXCLUDED.rx_packets_min, rx_packets_max = EXCLUDED.rx_packets_max,
        tx_packets_min = EXCLUDED.tx_packets_min, tx_packets_max = EXCLUDED.tx_packets_max,
        rx_errors_max = EXCLUDED.rx_errors_max, tx_errors_max = EXCLUDED.tx_errors_max
    $q$, rollup, b) USING from_ts, to_ts;
  ELSIF rollup IN ('scan_results_5m', 'scan_results_1h') THEN
    EXECUTE format($q$
      INSERT INTO %I AS r (bucket, tenant_id, probe_id, target_id, test_type, checks, successes, latency_ms_avg,
                           latency_ms_min, latency_ms_max, packet_loss_avg)
      SELECT %s, tenant_id, probe_id, target_id, test_type, count(*), count(*) FILTER (WHERE success),
             avg(latency_ms), min(latency_ms), max(latency_ms), avg(packet_loss)
      FROM scan_results WHERE time >= $1 AND time < $2
      GROUP BY 1, 2, 3, 4, 5
      ON CONFLICT (tenant_id, probe_id, target_id, test_type, bucket) DO UPDATE SET
        checks = EXCLUDED.checks, successes = EXCLUDED.successes, latency_ms_avg = EXCLUDED.latency_ms_avg,
        latency_ms_min = EXCLUDED.latency_ms_min, latency_ms_max = EXCLUDED.latency_ms_max,
        packet_loss_avg = EXCLUDED.packet_loss_avg
    $q$, rollup, b) USING from_ts, to_ts;
  ELSE
    RAISE EXCEPTION 'secumon_refresh_rollup: unknown rollup %', rollup;
  END IF;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
REVOKE EXECUTE ON FUNCTION secumon_refresh_rollup(text, timestamptz, timestamptz) FROM PUBLIC;
-- the job runs it as secumon_admin: the rollup tables force RLS, which would stop even their owner
GRANT EXECUTE ON FUNCTION secumon_refresh_rollup(text, timestamptz, timestamptz) TO secumon_admin;

SELECT secumon_enable_tenant_rls(t::regclass)
FROM unnest(ARRAY['system_metrics_5m', 'system_metrics_1h', 'disk_metrics_5m', 'disk_metrics_1h',
                  'network_metrics_5m', 'network_metrics_1h', 'scan_results_5m', 'scan_results_1h']) t;

GRANT SELECT ON system_metrics_5m, system_metrics_1h, disk_metrics_5m, disk_metrics_1h, network_metrics_5m,
  network_metrics_1h, scan_results_5m, scan_results_1h, rollup_progress TO secumon_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON system_metrics_5m, system_metrics_1h, disk_metrics_5m, disk_metrics_1h,
  network_metrics_5m, network_metrics_1h, scan_results_5m, scan_results_1h, rollup_progress TO secumon_admin;

SELECT secumon_ensure_partitions(name, now() - interval '1 day', now() + interval '2 days')
FROM telemetry_tables WHERE retention IN ('rollup_5m', 'rollup_1h');
