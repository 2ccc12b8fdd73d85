-- 023_telemetry_write_indexes: one btree per raw metrics table instead of two.
--
-- system_metrics, disk_metrics and network_metrics had the seed's (agent_id, time DESC) and
-- (tenant_id, time DESC) btrees plus the BRIN on time (020). Every COPYed row updated both btrees; they
-- are replaced by ONE btree on (tenant_id, agent_id, time DESC), which serves what reads ask of them:
--   * a tenant's agent over a time range (API charts, src/api/telemetry/series.ts; alerter per-series
--     queries) — the full key;
--   * a tenant over a time range (reports, alerter sweeps, charts without an agent filter) — the leading
--     tenant_id column, or the BRIN on time when the range is short, as it is for recent windows.
-- Every read filters on tenant_id (row-level security adds it when the query does not), so the agent-only
-- index served nothing the full key does not. One btree fewer per row: see docs/telemetry-path.md.
-- Indexes on a partitioned table (or hypertable) cascade to every partition (chunk), present and future.

DROP INDEX IF EXISTS idx_system_metrics_agent;
DROP INDEX IF EXISTS idx_system_metrics_tenant;
CREATE INDEX idx_system_metrics_tenant_agent ON system_metrics (tenant_id, agent_id, time DESC);

DROP INDEX IF EXISTS idx_disk_metrics_agent;
DROP INDEX IF EXISTS idx_disk_metrics_tenant;
CREATE INDEX idx_disk_metrics_tenant_agent ON disk_metrics (tenant_id, agent_id, time DESC);

DROP INDEX IF EXISTS idx_network_metrics_agent;
DROP INDEX IF EXISTS idx_network_metrics_tenant;
CREATE INDEX idx_network_metrics_tenant_agent ON network_metrics (tenant_id, agent_id, time DESC);
