-- 020_telemetry: telemetry storage — the seed's system_metrics, disk_metrics, network_metrics, scan_results and
-- snmp_metrics (every column), the dedup ledger ingested_batches, and the helpers that manage time partitions.
--
-- Two storage modes, chosen once, here, and recorded in telemetry_storage:
--   * timescale — when the timescaledb extension is available AND preloaded (shared_preload_libraries) AND the
--     migrating user may create it: the time tables are hypertables with daily chunks; retention drops chunks.
--   * plain     — otherwise (the default on these machines): the time tables are declaratively partitioned by
--     RANGE (time), one partition per UTC day (per month for the 1 h rollups, see 021), created ahead of time
--     and dropped past retention by the maintenance role (src/maintenance), which calls the functions below.
-- Queries read the same table names with the same SQL in both modes.
--
-- Deliberate differences from the seed, and why
--   * Telemetry tables carry tenant_id uuid NOT NULL but NO foreign key to tenants/agents: a foreign-key check
--     per COPYed row costs a large share of ingest throughput. The ingestion worker validates tenant and
--     source before writing (src/ingestion/validate.ts), and deleting a tenant removes its telemetry through
--     the trigger secumon_purge_tenant_telemetry (022).
--   * RLS is enabled and forced on every telemetry table (the rule of 001): the API reads as secumon_app.
--     PostgreSQL refuses COPY FROM into a table whose RLS applies to the current user, so the ingestion
--     worker writes as secumon_admin (BYPASSRLS), through withAdmin.
--   * Timescale mode without compression and without continuous aggregates: TimescaleDB refuses both on tables
--     with row-level security ("cannot enable RLS on hypertables using compression"; caggs on RLS tables are
--     prohibited — timescale/timescaledb#6827, #6832). Tenant isolation wins; the rollups (021) are tables kept
--     by the same incremental job in both modes.
--   * A BRIN index on time in every time table: the rollup and retention jobs scan by time range, which the
--     seed's (agent_id, time) / (tenant_id, time) indexes cannot serve; BRIN costs next to nothing on COPY.

-- ---------------------------------------------------------------------------------------------------------
-- Storage mode
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE telemetry_storage (
  id        boolean PRIMARY KEY DEFAULT true CONSTRAINT telemetry_storage_singleton CHECK (id),
  mode      text NOT NULL CONSTRAINT telemetry_storage_mode_check CHECK (mode IN ('plain', 'timescale')),
  chosen_at timestamptz NOT NULL DEFAULT now()
);

DO $mode$
DECLARE
  chosen text := 'plain';
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
     AND coalesce(current_setting('shared_preload_libraries', true), '') ~ 'timescaledb' THEN
    BEGIN
      CREATE EXTENSION IF NOT EXISTS timescaledb;
      chosen := 'timescale';
    EXCEPTION WHEN insufficient_privilege OR feature_not_supported OR object_not_in_prerequisite_state THEN
      RAISE NOTICE 'timescaledb is installed but cannot be enabled (%); telemetry uses plain partitions', SQLERRM;
    END;
  END IF;
  INSERT INTO telemetry_storage (mode) VALUES (chosen);
END
$mode$;

CREATE FUNCTION secumon_telemetry_mode() RETURNS text
  LANGUAGE sql STABLE
  AS $$ SELECT mode FROM telemetry_storage $$;

-- Every time-ordered table the maintenance role manages: its time column, the size of one partition (plain
-- mode) and which `retention.*` setting applies ('raw', 'rollup_5m', 'rollup_1h', 'logs', or 'dedup' for
-- ingested_batches, kept for the stream's max age plus a margin).
CREATE TABLE telemetry_tables (
  name        text PRIMARY KEY,
  time_column text NOT NULL,
  step        text NOT NULL CONSTRAINT telemetry_tables_step_check CHECK (step IN ('day', 'month')),
  retention   text NOT NULL
              CONSTRAINT telemetry_tables_retention_check CHECK (retention IN ('raw', 'rollup_5m', 'rollup_1h', 'logs', 'dedup'))
);

-- ---------------------------------------------------------------------------------------------------------
-- Helpers (called by migrations, the maintenance role and the ingestion worker as the schema owner)
-- ---------------------------------------------------------------------------------------------------------

-- Creates a time table: partitioned by range of `time_column` in plain mode (or when `always_partitioned`),
-- a hypertable in timescale mode; then records it in telemetry_tables.
CREATE FUNCTION secumon_create_time_table(
  tbl name, columns text, time_column name, step text, retention text, always_partitioned boolean DEFAULT false
) RETURNS void
  LANGUAGE plpgsql
  AS $$
BEGIN
  IF always_partitioned OR secumon_telemetry_mode() = 'plain' THEN
    EXECUTE format('CREATE TABLE %I (%s) PARTITION BY RANGE (%I)', tbl, columns, time_column);
  ELSE
    EXECUTE format('CREATE TABLE %I (%s)', tbl, columns);
    EXECUTE format(
      'SELECT create_hypertable(%L, %L, chunk_time_interval => interval %L, create_default_indexes => false)',
      tbl, time_column, CASE step WHEN 'day' THEN '1 day' ELSE '30 days' END);
  END IF;
  EXECUTE format('CREATE INDEX %I ON %I USING brin (%I)', tbl || '_time_brin', tbl, time_column);
  INSERT INTO telemetry_tables (name, time_column, step, retention) VALUES (tbl, time_column, step, retention);
END
$$;

-- Name of the partition of `parent` that starts at `start`: parent_pYYYYMMDD (day) or parent_pYYYYMM (month).
CREATE FUNCTION secumon_partition_name(parent text, step text, start timestamptz) RETURNS text
  LANGUAGE sql IMMUTABLE
  AS $$ SELECT parent || '_p' || to_char(start AT TIME ZONE 'UTC', CASE step WHEN 'day' THEN 'YYYYMMDD' ELSE 'YYYYMM' END) $$;

-- Creates the missing partitions of a partitioned time table covering [from_ts, to_ts] (UTC days or months).
-- Partitions of tenant-owned tables get the tenant RLS policy too (reads through the parent use the parent's
-- policy; this guards direct access to a partition). Serialised by a transaction-level advisory lock, so
-- the maintenance role and ingestion workers may call it concurrently. No-op for hypertables (timescale
-- creates chunks itself). Returns the number of partitions created.
CREATE FUNCTION secumon_ensure_partitions(parent text, from_ts timestamptz, to_ts timestamptz) RETURNS integer
  LANGUAGE plpgsql
  AS $$
DECLARE
  t telemetry_tables;
  step_iv interval;
  s timestamptz;
  part text;
  created integer := 0;
  tenant_owned boolean;
BEGIN
  SELECT * INTO t FROM telemetry_tables WHERE name = parent;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'secumon_ensure_partitions: % is not a telemetry table', parent;
  END IF;
  IF (SELECT relkind FROM pg_class WHERE oid = parent::regclass) <> 'p' THEN
    RETURN 0;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('secumon.partitions.' || parent, 0));
  step_iv := CASE t.step WHEN 'day' THEN interval '1 day' ELSE interval '1 month' END;
  tenant_owned := EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = parent::regclass AND attname = 'tenant_id' AND NOT attisdropped);
  s := date_trunc(t.step, from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  WHILE s <= to_ts LOOP
    part := secumon_partition_name(parent, t.step, s);
    IF to_regclass(quote_ident(part)) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
        part, parent, s, ((s AT TIME ZONE 'UTC') + step_iv) AT TIME ZONE 'UTC');
      IF tenant_owned THEN
        PERFORM secumon_enable_tenant_rls(part::regclass);
      END IF;
      created := created + 1;
    END IF;
    s := ((s AT TIME ZONE 'UTC') + step_iv) AT TIME ZONE 'UTC';
  END LOOP;
  RETURN created;
END
$$;

-- Drops what lies entirely before `cutoff`: partitions whose upper bound is <= cutoff (plain), or chunks
-- (timescale, drop_chunks). Returns the names of the dropped partitions (empty for hypertables).
CREATE FUNCTION secumon_drop_before(parent text, cutoff timestamptz) RETURNS SETOF text
  LANGUAGE plpgsql
  AS $$
DECLARE
  t telemetry_tables;
  r record;
  upper_bound timestamptz;
BEGIN
  SELECT * INTO t FROM telemetry_tables WHERE name = parent;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'secumon_drop_before: % is not a telemetry table', parent;
  END IF;
  IF (SELECT relkind FROM pg_class WHERE oid = parent::regclass) <> 'p' THEN
    EXECUTE format('SELECT drop_chunks(%L, older_than => %L::timestamptz)', parent, cutoff);
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('secumon.partitions.' || parent, 0));
  FOR r IN
    SELECT c.relname
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = parent::regclass AND c.relname ~ ('^' || parent || '_p[0-9]{6}([0-9]{2})?$')
    ORDER BY c.relname
  LOOP
    upper_bound := CASE t.step
      WHEN 'day' THEN (to_date(right(r.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC'
      ELSE (to_date(right(r.relname, 6) || '01', 'YYYYMMDD') + interval '1 month')::timestamp AT TIME ZONE 'UTC'
    END;
    IF upper_bound <= cutoff THEN
      EXECUTE format('DROP TABLE %I', r.relname);
      RETURN NEXT r.relname;
    END IF;
  END LOOP;
END
$$;

REVOKE EXECUTE ON FUNCTION secumon_create_time_table(name, text, name, text, text, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION secumon_ensure_partitions(text, timestamptz, timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION secumon_drop_before(text, timestamptz) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------------------
-- Raw telemetry (seed columns; text instead of varchar(n), per 001's rules)
-- ---------------------------------------------------------------------------------------------------------
SELECT secumon_create_time_table('system_metrics', $cols$
  time          timestamptz NOT NULL,
  tenant_id     uuid NOT NULL,
  agent_id      uuid NOT NULL,
  cpu_usage     double precision,
  cpu_user      double precision,
  cpu_system    double precision,
  cpu_iowait    double precision,
  load_avg_1    double precision,
  load_avg_5    double precision,
  load_avg_15   double precision,
  mem_total     bigint,
  mem_used      bigint,
  mem_available bigint,
  mem_cached    bigint,
  swap_used     bigint,
  extra         jsonb NOT NULL DEFAULT '{}'
$cols$, 'time', 'day', 'raw');
CREATE INDEX idx_system_metrics_agent ON system_metrics (agent_id, time DESC);
CREATE INDEX idx_system_metrics_tenant ON system_metrics (tenant_id, time DESC);

SELECT secumon_create_time_table('disk_metrics', $cols$
  time          timestamptz NOT NULL,
  tenant_id     uuid NOT NULL,
  agent_id      uuid NOT NULL,
  device        text NOT NULL,
  mountpoint    text,
  total_bytes   bigint,
  used_bytes    bigint,
  usage_percent double precision,
  read_bytes    bigint,
  write_bytes   bigint,
  read_ops      bigint,
  write_ops     bigint,
  read_latency  double precision,
  write_latency double precision
$cols$, 'time', 'day', 'raw');
CREATE INDEX idx_disk_metrics_agent ON disk_metrics (agent_id, time DESC);
CREATE INDEX idx_disk_metrics_tenant ON disk_metrics (tenant_id, time DESC);

SELECT secumon_create_time_table('network_metrics', $cols$
  time       timestamptz NOT NULL,
  tenant_id  uuid NOT NULL,
  agent_id   uuid NOT NULL,
  interface  text NOT NULL,
  rx_bytes   bigint,
  tx_bytes   bigint,
  rx_packets bigint,
  tx_packets bigint,
  rx_errors  bigint,
  tx_errors  bigint
$cols$, 'time', 'day', 'raw');
CREATE INDEX idx_network_metrics_agent ON network_metrics (agent_id, time DESC);
CREATE INDEX idx_network_metrics_tenant ON network_metrics (tenant_id, time DESC);

SELECT secumon_create_time_table('scan_results', $cols$
  time          timestamptz NOT NULL,
  tenant_id     uuid NOT NULL,
  probe_id      uuid NOT NULL,
  target_id     uuid NOT NULL,
  test_type     text NOT NULL,
  success       boolean NOT NULL,
  error_message text,
  latency_ms    double precision,
  packet_loss   double precision,
  result_data   jsonb NOT NULL DEFAULT '{}'
$cols$, 'time', 'day', 'raw');
CREATE INDEX idx_scan_results_target ON scan_results (target_id, time DESC);
CREATE INDEX idx_scan_results_type ON scan_results (test_type, time DESC);
CREATE INDEX idx_scan_results_tenant ON scan_results (tenant_id, time DESC);

SELECT secumon_create_time_table('snmp_metrics', $cols$
  time          timestamptz NOT NULL,
  tenant_id     uuid NOT NULL,
  probe_id      uuid NOT NULL,
  target_id     uuid NOT NULL,
  oid           text NOT NULL,
  oid_name      text,
  value_type    text,
  value_numeric double precision,
  value_string  text
$cols$, 'time', 'day', 'raw');
CREATE INDEX idx_snmp_metrics_target ON snmp_metrics (target_id, time DESC);
CREATE INDEX idx_snmp_metrics_oid ON snmp_metrics (oid, time DESC);

-- ---------------------------------------------------------------------------------------------------------
-- Dedup ledger: one row per batch written, in the same transaction as its rows (docs/telemetry-path.md).
-- Partitioned by day in both modes and dropped after the stream's max age plus a margin. A partitioned table
-- cannot hold a unique key without the partition column, so uniqueness is enforced by the writer: it takes a
-- transaction-level advisory lock per batch, then inserts only the batches not yet recorded
-- (src/telemetry/ledger.ts).
-- ---------------------------------------------------------------------------------------------------------
SELECT secumon_create_time_table('ingested_batches', $cols$
  source_id   uuid NOT NULL,
  batch_id    text NOT NULL CONSTRAINT ingested_batches_batch_id_length CHECK (length(batch_id) BETWEEN 1 AND 64),
  kind        text NOT NULL
              CONSTRAINT ingested_batches_kind_check CHECK (kind IN ('metrics', 'logs', 'inventory', 'scans', 'snmp')),
  tenant_id   uuid NOT NULL,
  rows        integer NOT NULL,
  ingested_at timestamptz NOT NULL DEFAULT now()
$cols$, 'ingested_at', 'day', 'dedup', true);
CREATE INDEX idx_ingested_batches_key ON ingested_batches (source_id, batch_id);

-- ---------------------------------------------------------------------------------------------------------
-- Row-level security and privileges
-- ---------------------------------------------------------------------------------------------------------
SELECT secumon_enable_tenant_rls('system_metrics');
SELECT secumon_enable_tenant_rls('disk_metrics');
SELECT secumon_enable_tenant_rls('network_metrics');
SELECT secumon_enable_tenant_rls('scan_results');
SELECT secumon_enable_tenant_rls('snmp_metrics');
SELECT secumon_enable_tenant_rls('ingested_batches');

GRANT SELECT ON system_metrics, disk_metrics, network_metrics, scan_results, snmp_metrics, ingested_batches,
  telemetry_storage, telemetry_tables TO secumon_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON system_metrics, disk_metrics, network_metrics, scan_results, snmp_metrics,
  ingested_batches TO secumon_admin;
GRANT SELECT ON telemetry_storage, telemetry_tables TO secumon_admin;

-- The partitions around today exist from the start (the maintenance role keeps them ahead afterwards).
SELECT secumon_ensure_partitions(name, now() - interval '1 day', now() + interval '2 days') FROM telemetry_tables;
