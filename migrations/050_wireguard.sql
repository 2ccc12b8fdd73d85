-- 050_wireguard: the collector's WireGuard interface (keys, endpoint), tunnel address allocation for agents and
-- probes, per-tenant pools, and the change notifications the wgmanager role listens to.
--
-- Contract with the gateway (enrollment) and the API
--   * secumon_wg_assign(kind, id, public_key) RETURNS inet — call it inside withAdmin() (role secumon_admin,
--     which bypasses row-level security: allocation must see every tenant's addresses to avoid collisions).
--     It is SECURITY INVOKER and executable by secumon_admin and the schema owner only, never by secumon_app.
--     Idempotent: the same principal keeps its address (its key may change). Allocation is serialized by a
--     transaction-level advisory lock, with the primary key of wireguard_addresses as a backstop, so concurrent
--     enrollments never get the same address. Errors (SQLSTATE):
--       22023 bad kind or public key (not base64 of 32 bytes)      P0002 no such agent/probe
--       23505 the key belongs to another agent/probe               55000 WireGuard never started (no server row)
--       53400 the pool is exhausted (message names the pool and the setting to change)
--   * wireguard_server: one row, written by the wgmanager role at start. Everyone (secumon_app, secumon_admin)
--     may read its public columns: public_key, endpoint, listen_port, address, allowed_ips, persistent_keepalive,
--     next_public_key and rotate_at (a pending key rotation: agents re-fetch and switch at rotate_at). The sealed
--     private keys are readable by the schema owner only.
--   * Deleting an agent/probe releases its address (ON DELETE CASCADE); clearing wireguard_public_key releases
--     it too. Revoking (status 'revoked') keeps the address but removes the peer from the interface.
--   * Every change that matters to the interface raises NOTIFY secumon_wireguard_changed with a JSON payload
--     {"op": "INSERT"|"UPDATE"|"DELETE", "kind": "agent"|"probe", "id", "tenant_id"}; delivered on commit.

-- ---------------------------------------------------------------------------------------------------------
-- The collector's side of the tunnel (one row)
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE wireguard_server (
  id                      boolean PRIMARY KEY DEFAULT true CONSTRAINT wireguard_server_single_row CHECK (id),
  interface               text NOT NULL,
  public_key              text NOT NULL,
  private_key_sealed      bytea NOT NULL, -- AES-256-GCM (src/security/keyring.ts), context wireguard_server.private_key:<public_key>
  next_public_key         text,           -- pending rotation: announced now, used from rotate_at on
  next_private_key_sealed bytea,
  rotate_at               timestamptz,
  previous_public_key     text,           -- the key replaced by the last rotation (for the record)
  rotated_at              timestamptz,
  endpoint                text NOT NULL DEFAULT '', -- host:port peers connect to; '' = not configured
  listen_port             integer NOT NULL CONSTRAINT wireguard_server_port_range CHECK (listen_port BETWEEN 0 AND 65535),
  address                 inet NOT NULL,  -- the collector's tunnel address with the interface prefix (10.200.0.1/16)
  pool                    cidr NOT NULL,  -- default pool for tenants without one of their own
  allowed_ips             cidr[] NOT NULL, -- what a peer routes into the tunnel (default: the collector's /32)
  persistent_keepalive    integer NOT NULL DEFAULT 25,
  updated_at              timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT wireguard_server_rotation_complete
    CHECK ((next_public_key IS NULL) = (next_private_key_sealed IS NULL) AND (next_public_key IS NULL) = (rotate_at IS NULL))
);

-- ---------------------------------------------------------------------------------------------------------
-- Per-tenant pools (optional; a tenant without one allocates from wireguard_server.pool). Pools never overlap.
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE wireguard_pools (
  tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  pool       cidr NOT NULL CONSTRAINT wireguard_pools_ipv4 CHECK (family(pool) = 4 AND masklen(pool) <= 30),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT wireguard_pools_no_overlap EXCLUDE USING gist (pool inet_ops WITH &&)
);
CREATE TRIGGER wireguard_pools_updated_at BEFORE UPDATE ON wireguard_pools
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();

-- ---------------------------------------------------------------------------------------------------------
-- Allocated tunnel addresses: the allocation authority (agents.wireguard_ip / probes.wireguard_ip mirror it).
-- Unique across agents AND probes and across tenants: one interface serves them all.
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE wireguard_addresses (
  address    inet PRIMARY KEY CONSTRAINT wireguard_addresses_host CHECK (family(address) = 4 AND masklen(address) = 32),
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  agent_id   uuid CONSTRAINT wireguard_addresses_agent_key UNIQUE,
  probe_id   uuid CONSTRAINT wireguard_addresses_probe_key UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT wireguard_addresses_one_owner CHECK ((agent_id IS NULL) <> (probe_id IS NULL)),
  CONSTRAINT wireguard_addresses_agent_fkey FOREIGN KEY (tenant_id, agent_id)
    REFERENCES agents (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT wireguard_addresses_probe_fkey FOREIGN KEY (tenant_id, probe_id)
    REFERENCES probes (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX wireguard_addresses_tenant_idx ON wireguard_addresses (tenant_id);

SELECT secumon_enable_tenant_rls('wireguard_pools');
SELECT secumon_enable_tenant_rls('wireguard_addresses');

-- ---------------------------------------------------------------------------------------------------------
-- Allocation
-- ---------------------------------------------------------------------------------------------------------

-- The lowest free host address of p_pool: not the network or broadcast address, not allocated, not the
-- collector's own address. Candidates are the first host and each used address + 1, so the search is one pass
-- over the pool's allocated addresses (index range scan), not over the whole pool.
CREATE FUNCTION secumon_wg_free_address(p_pool cidr) RETURNS inet
  LANGUAGE sql STABLE
  AS $$
  WITH used AS (
    SELECT address AS a FROM wireguard_addresses WHERE address << p_pool
    UNION ALL
    SELECT set_masklen(address, 32) FROM wireguard_server WHERE set_masklen(address, 32) << p_pool
  )
  SELECT c.a
  FROM (
    SELECT set_masklen(network(p_pool)::inet, 32) + 1 AS a
    UNION ALL
    SELECT a + 1 FROM used
  ) c
  WHERE c.a << p_pool
    AND c.a < set_masklen(broadcast(p_pool), 32)
    AND NOT EXISTS (SELECT 1 FROM used u WHERE u.a = c.a)
  ORDER BY c.a
  LIMIT 1
$$;

CREATE FUNCTION secumon_wg_assign(p_kind text, p_id uuid, p_public_key text) RETURNS inet
  LANGUAGE plpgsql
  AS $$
DECLARE
  v_tenant uuid;
  v_pool   cidr;
  v_addr   inet;
  v_other  text;
BEGIN
  IF p_kind IS NULL OR p_kind NOT IN ('agent', 'probe') THEN
    RAISE EXCEPTION 'WireGuard peer kind must be ''agent'' or ''probe'', got %', coalesce(p_kind, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF p_public_key IS NULL OR p_public_key !~ '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$' THEN
    RAISE EXCEPTION 'WireGuard public key must be 32 bytes in base64 (44 characters, as printed by "wg pubkey")'
      USING ERRCODE = '22023';
  END IF;

  -- one allocation at a time, whole installation (cheap: enrollment is rare)
  PERFORM pg_advisory_xact_lock(hashtext('secumon_wg_assign'));

  IF p_kind = 'agent' THEN
    SELECT tenant_id INTO v_tenant FROM agents WHERE id = p_id FOR UPDATE;
  ELSE
    SELECT tenant_id INTO v_tenant FROM probes WHERE id = p_id FOR UPDATE;
  END IF;
  IF v_tenant IS NULL THEN
    RAISE EXCEPTION '% % not found', p_kind, p_id
      USING ERRCODE = 'P0002', HINT = 'Call secumon_wg_assign inside withAdmin() after the row is inserted.';
  END IF;

  SELECT kind INTO v_other FROM (
    SELECT 'agent' AS kind, id FROM agents WHERE wireguard_public_key = p_public_key
    UNION ALL
    SELECT 'probe', id FROM probes WHERE wireguard_public_key = p_public_key
  ) k WHERE NOT (k.kind = p_kind AND k.id = p_id) LIMIT 1;
  IF v_other IS NOT NULL THEN
    RAISE EXCEPTION 'this WireGuard public key is already used by another %', v_other
      USING ERRCODE = '23505', HINT = 'Each agent and probe needs its own key pair: generate a new one on the device.';
  END IF;

  SELECT address INTO v_addr FROM wireguard_addresses
   WHERE (p_kind = 'agent' AND agent_id = p_id) OR (p_kind = 'probe' AND probe_id = p_id);

  IF v_addr IS NULL THEN
    SELECT pool INTO v_pool FROM wireguard_pools WHERE tenant_id = v_tenant;
    IF v_pool IS NULL THEN
      SELECT pool INTO v_pool FROM wireguard_server;
    END IF;
    IF v_pool IS NULL THEN
      RAISE EXCEPTION 'WireGuard is not set up on this collector yet'
        USING ERRCODE = '55000',
              HINT = 'Set wireguard.enabled: true and run the wgmanager role once, then enroll again.';
    END IF;
    v_addr := secumon_wg_free_address(v_pool);
    IF v_addr IS NULL THEN
      RAISE EXCEPTION 'no free WireGuard address left in pool % (tenant %)', v_pool, v_tenant
        USING ERRCODE = '53400',
              HINT = 'Give the tenant a larger pool (wireguard.tenant_pools) or widen wireguard.pool, or delete unused agents/probes.';
    END IF;
    IF p_kind = 'agent' THEN
      INSERT INTO wireguard_addresses (address, tenant_id, agent_id) VALUES (v_addr, v_tenant, p_id);
    ELSE
      INSERT INTO wireguard_addresses (address, tenant_id, probe_id) VALUES (v_addr, v_tenant, p_id);
    END IF;
  END IF;

  IF p_kind = 'agent' THEN
    UPDATE agents SET wireguard_public_key = p_public_key, wireguard_ip = v_addr WHERE id = p_id;
  ELSE
    UPDATE probes SET wireguard_public_key = p_public_key, wireguard_ip = v_addr WHERE id = p_id;
  END IF;
  RETURN v_addr;
END
$$;
REVOKE EXECUTE ON FUNCTION secumon_wg_assign(text, uuid, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION secumon_wg_free_address(cidr) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secumon_wg_assign(text, uuid, text) TO secumon_admin;
GRANT EXECUTE ON FUNCTION secumon_wg_free_address(cidr) TO secumon_admin;

-- ---------------------------------------------------------------------------------------------------------
-- Release on key cleared, and change notifications
-- ---------------------------------------------------------------------------------------------------------
CREATE FUNCTION secumon_wg_release() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
BEGIN
  NEW.wireguard_ip := NULL;
  IF TG_TABLE_NAME = 'agents' THEN
    DELETE FROM wireguard_addresses WHERE agent_id = OLD.id;
  ELSE
    DELETE FROM wireguard_addresses WHERE probe_id = OLD.id;
  END IF;
  RETURN NEW;
END
$$;

CREATE FUNCTION secumon_wg_notify() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
DECLARE
  r record;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  PERFORM pg_notify('secumon_wireguard_changed', json_build_object(
    'op', TG_OP,
    'kind', CASE TG_TABLE_NAME WHEN 'agents' THEN 'agent' ELSE 'probe' END,
    'id', r.id,
    'tenant_id', r.tenant_id)::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER agents_wireguard_release BEFORE UPDATE OF wireguard_public_key ON agents
  FOR EACH ROW WHEN (NEW.wireguard_public_key IS NULL AND OLD.wireguard_public_key IS NOT NULL)
  EXECUTE FUNCTION secumon_wg_release();
CREATE TRIGGER probes_wireguard_release BEFORE UPDATE OF wireguard_public_key ON probes
  FOR EACH ROW WHEN (NEW.wireguard_public_key IS NULL AND OLD.wireguard_public_key IS NOT NULL)
  EXECUTE FUNCTION secumon_wg_release();

CREATE TRIGGER agents_wireguard_changed_ins AFTER INSERT ON agents
  FOR EACH ROW WHEN (NEW.wireguard_public_key IS NOT NULL) EXECUTE FUNCTION secumon_wg_notify();
CREATE TRIGGER agents_wireguard_changed_upd AFTER UPDATE ON agents
  FOR EACH ROW WHEN (OLD.wireguard_public_key IS DISTINCT FROM NEW.wireguard_public_key
                     OR OLD.wireguard_ip IS DISTINCT FROM NEW.wireguard_ip
                     OR OLD.status IS DISTINCT FROM NEW.status AND NEW.wireguard_public_key IS NOT NULL)
  EXECUTE FUNCTION secumon_wg_notify();
CREATE TRIGGER agents_wireguard_changed_del AFTER DELETE ON agents
  FOR EACH ROW WHEN (OLD.wireguard_public_key IS NOT NULL) EXECUTE FUNCTION secumon_wg_notify();
CREATE TRIGGER probes_wireguard_changed_ins AFTER INSERT ON probes
  FOR EACH ROW WHEN (NEW.wireguard_public_key IS NOT NULL) EXECUTE FUNCTION secumon_wg_notify();
CREATE TRIGGER probes_wireguard_changed_upd AFTER UPDATE ON probes
  FOR EACH ROW WHEN (OLD.wireguard_public_key IS DISTINCT FROM NEW.wireguard_public_key
                     OR OLD.wireguard_ip IS DISTINCT FROM NEW.wireguard_ip
                     OR OLD.status IS DISTINCT FROM NEW.status AND NEW.wireguard_public_key IS NOT NULL)
  EXECUTE FUNCTION secumon_wg_notify();
CREATE TRIGGER probes_wireguard_changed_del AFTER DELETE ON probes
  FOR EACH ROW WHEN (OLD.wireguard_public_key IS NOT NULL) EXECUTE FUNCTION secumon_wg_notify();

-- ---------------------------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------------------------
GRANT SELECT (id, interface, public_key, next_public_key, rotate_at, previous_public_key, rotated_at, endpoint,
              listen_port, address, pool, allowed_ips, persistent_keepalive, updated_at)
  ON wireguard_server TO secumon_app, secumon_admin;
GRANT SELECT ON wireguard_pools, wireguard_addresses TO secumon_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON wireguard_pools, wireguard_addresses TO secumon_admin;
-- the release trigger runs as the caller: a tenant session clearing its own agent's key frees the address
GRANT DELETE ON wireguard_addresses TO secumon_app;
