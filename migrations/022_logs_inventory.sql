-- 022_logs_inventory: agent log lines (searchable, partitioned by day, retention `retention.logs`), agent
-- inventory (current state per agent plus a change history), and the purge of a deleted tenant's telemetry.
--
-- Inventory answers "which hosts run openssl 3.0.2" (inventory_packages by (tenant_id, name, version)) and
-- "what changed on this host yesterday" (inventory_changes by (tenant_id, agent_id, time)). The current-state
-- tables are small and keyed per agent, so unlike the telemetry tables they do reference agents (composite
-- key, ON DELETE CASCADE): deleting an agent deletes its inventory.

SELECT secumon_create_time_table('logs', $cols$
  time      timestamptz NOT NULL,
  tenant_id uuid NOT NULL,
  agent_id  uuid NOT NULL,
  level     text NOT NULL CONSTRAINT logs_level_check
            CHECK (level IN ('unspecified', 'debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency')),
  source    text NOT NULL DEFAULT '',
  message   text NOT NULL,
  fields    jsonb NOT NULL DEFAULT '{}'
$cols$, 'time', 'day', 'logs');
CREATE INDEX idx_logs_tenant ON logs (tenant_id, time DESC);
CREATE INDEX idx_logs_agent ON logs (agent_id, time DESC);
-- full-text search: WHERE to_tsvector('simple', message) @@ websearch_to_tsquery('simple', $1)
CREATE INDEX idx_logs_message_fts ON logs USING gin (to_tsvector('simple', message));

-- Current state, one row per agent: the last snapshot's OS section and counts.
CREATE TABLE inventory_hosts (
  tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  agent_id     uuid NOT NULL,
  collected_at timestamptz NOT NULL, -- time of the snapshot (agent clock)
  hostname     text,
  os_name      text,
  os_version   text,
  kernel       text,
  arch         text,
  boot_time    timestamptz,
  packages     integer NOT NULL DEFAULT 0,
  services     integer NOT NULL DEFAULT 0,
  ports        integer NOT NULL DEFAULT 0,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_id),
  FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX inventory_hosts_tenant_idx ON inventory_hosts (tenant_id, os_name, os_version);

CREATE TABLE inventory_packages (
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  agent_id   uuid NOT NULL,
  manager    text NOT NULL, -- dpkg, rpm, msi, pip … ('' when the agent did not say)
  name       text NOT NULL,
  arch       text NOT NULL,
  version    text NOT NULL,
  first_seen timestamptz NOT NULL, -- snapshot time this version was first seen
  PRIMARY KEY (agent_id, manager, name, arch),
  FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX inventory_packages_lookup_idx ON inventory_packages (tenant_id, name, version);

CREATE TABLE inventory_services (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  agent_id  uuid NOT NULL,
  name      text NOT NULL,
  state     text NOT NULL,
  enabled   boolean NOT NULL,
  PRIMARY KEY (agent_id, name),
  FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX inventory_services_tenant_idx ON inventory_services (tenant_id, name, state);

CREATE TABLE inventory_ports (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  agent_id  uuid NOT NULL,
  protocol  text NOT NULL,
  address   text NOT NULL,
  port      integer NOT NULL CONSTRAINT inventory_ports_port_range CHECK (port BETWEEN 0 AND 65535),
  process   text NOT NULL,
  pid       integer,
  PRIMARY KEY (agent_id, protocol, address, port),
  FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX inventory_ports_tenant_idx ON inventory_ports (tenant_id, port);

-- What changed between two consecutive snapshots of an agent (the first snapshot records no changes).
-- Kept for `retention.rollup_1h`; history outlives a deleted agent (no foreign key on agent_id).
CREATE TABLE inventory_changes (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time      timestamptz NOT NULL, -- snapshot time that revealed the change
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  agent_id  uuid NOT NULL,
  item_type text NOT NULL CONSTRAINT inventory_changes_item_type_check CHECK (item_type IN ('package', 'service', 'port', 'os')),
  item      text NOT NULL, -- 'dpkg:openssl:amd64', 'ssh', 'tcp/0.0.0.0:22', 'kernel'
  change    text NOT NULL CONSTRAINT inventory_changes_change_check
            CHECK (change IN ('installed', 'removed', 'upgraded', 'downgraded', 'changed', 'added')),
  old_value text,
  new_value text
);
CREATE INDEX inventory_changes_agent_idx ON inventory_changes (tenant_id, agent_id, time DESC);
CREATE INDEX inventory_changes_time_idx ON inventory_changes (time);

SELECT secumon_enable_tenant_rls('logs');
SELECT secumon_enable_tenant_rls('inventory_hosts');
SELECT secumon_enable_tenant_rls('inventory_packages');
SELECT secumon_enable_tenant_rls('inventory_services');
SELECT secumon_enable_tenant_rls('inventory_ports');
SELECT secumon_enable_tenant_rls('inventory_changes');

GRANT SELECT ON logs, inventory_hosts, inventory_packages, inventory_services, inventory_ports, inventory_changes
  TO secumon_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON logs, inventory_hosts, inventory_packages, inventory_services,
  inventory_ports, inventory_changes TO secumon_admin;

CREATE TRIGGER inventory_hosts_updated_at BEFORE UPDATE ON inventory_hosts
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();

-- Telemetry tables have no foreign key to tenants (020): deleting a tenant deletes its telemetry here.
CREATE FUNCTION secumon_purge_tenant_telemetry() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
DECLARE
  t text;
BEGIN
  FOR t IN
    SELECT tt.name FROM telemetry_tables tt
    WHERE EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = tt.name::regclass AND a.attname = 'tenant_id' AND NOT a.attisdropped)
  LOOP
    EXECUTE format('DELETE FROM %I WHERE tenant_id = $1', t) USING OLD.id;
  END LOOP;
  RETURN OLD;
END
$$;
CREATE TRIGGER tenants_purge_telemetry AFTER DELETE ON tenants
  FOR EACH ROW EXECUTE FUNCTION secumon_purge_tenant_telemetry();

SELECT secumon_ensure_partitions('logs', now() - interval '1 day', now() + interval '2 days');
