-- 001_initial: configuration schema (tenants, users, agents, probes, targets, SNMP credentials, alert rules,
-- notification channels, alert history, audit log, enrollment tokens, API keys, refresh tokens), the two
-- database roles the collector switches to, and row-level security. Target: PostgreSQL 15 (gen_random_uuid()
-- is core since 13, so no extension is needed).
--
-- Rules for this file and every later migration
--   * Forward only. An applied migration is never edited (the runner checks a SHA-256 of each file); a change
--     is a new file with the next number. Each file runs in one transaction: no BEGIN/COMMIT inside.
--   * Every tenant-owned row has `tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE`, and its
--     table gets `SELECT secumon_enable_tenant_rls('the_table')` plus explicit GRANTs to both roles below.
--     test/storage/schema.test.ts fails for a table with a tenant_id column and no forced RLS.
--   * References between tenant-owned rows are composite, (tenant_id, x_id) → x (tenant_id, id), so a row can
--     never point at another tenant's row (foreign-key checks do not see RLS, so RLS alone would not stop it).
--   * text, not varchar(n), where a length would be arbitrary; timestamptz NOT NULL DEFAULT now();
--     inet for addresses; enum-like columns are text with a named CHECK (a later migration drops and re-adds
--     the named constraint to extend the list — simpler than ALTER TYPE … ADD VALUE, which cannot run in a
--     transaction block on every version).
--
-- Tenant isolation (defence in depth behind the API's own scoping)
--   The API runs each request in a transaction that does `SET LOCAL ROLE secumon_app` and
--   `set_config('secumon.tenant_id', <tenant>, true)` (src/storage/db.ts withTenant). Every tenant-owned table
--   has ROW LEVEL SECURITY enabled AND FORCED (so even the owning role is subject to it unless it is a
--   superuser or BYPASSRLS), with one policy:
--       USING / WITH CHECK (tenant_id = secumon_current_tenant())
--   secumon_current_tenant() is current_setting('secumon.tenant_id', true)::uuid, except that an empty string
--   is read as NULL: once a pooled connection has run one transaction with set_config(…, true), the setting
--   reads back as '' (not NULL) in its later transactions, and ''::uuid would raise an error instead of
--   matching nothing. A session that has not set a tenant therefore sees no rows and can write none.
--   This guards against a forgotten WHERE clause, not against arbitrary SQL: a role that can run any SQL can
--   also call set_config itself.
--
-- Bypass (superadmin screens, authentication, maintenance): a separate role, secumon_admin, with BYPASSRLS.
--   Chosen over a policy on current_setting('secumon.bypass_rls') because any session can turn a setting on,
--   whereas SET ROLE secumon_admin needs the *login* role to be a member of it. Today the collector logs in
--   as the schema owner, a member of both roles, so neither design stops arbitrary SQL (that could simply
--   RESET ROLE); both stop the common mistake. The role design also holds when the API later logs in as a
--   role of its own that is only a member of secumon_app: that login cannot reach secumon_admin at all
--   (tested), while it could set a GUC. Bypassing is explicit, greppable code (db.ts withAdmin). Lookups made
--   before a tenant is known (login by e-mail; enrollment token, API key and refresh token by hash) run as
--   secumon_admin.
--   Creating a BYPASSRLS role needs a superuser on PostgreSQL 15. The embedded cluster's user is one; on an
--   external database whose collector user is not, a DBA runs once, beforehand:
--       CREATE ROLE secumon_app NOLOGIN; CREATE ROLE secumon_admin NOLOGIN BYPASSRLS;
--       GRANT secumon_app, secumon_admin TO <collector user>;
--   and this migration then only checks them. Roles are cluster-wide: several databases share them.
--
-- Users without a tenant: exactly the superadmins. users.tenant_id is NULL if and only if role = 'superadmin'
--   (CHECK users_superadmin_has_no_tenant). Superadmins operate the platform rather than belong to a tenant.
--   Consequences: a tenant session (RLS) never sees them and can never create one (its WITH CHECK demands its
--   own tenant_id, the CHECK then forbids 'superadmin'), so no tenant admin can promote anybody to superadmin.
--   E-mail addresses are unique across the whole installation, case-insensitively, because login identifies
--   a user by e-mail before any tenant is known.
--
-- audit_logs.tenant_id is NULL for platform events (a superadmin creating or deleting a tenant: that entry
--   must outlive the tenant's cascade). Only secumon_admin sees those rows.
--
-- secumon_app may SELECT/INSERT/UPDATE/DELETE tenant-owned rows, except: tenants (SELECT, UPDATE of its own
--   row), audit_logs (SELECT, INSERT: append-only), refresh_tokens (nothing). schema_migrations (created by
--   the runner) is granted to neither role.

-- ---------------------------------------------------------------------------------------------------------
-- Roles
-- ---------------------------------------------------------------------------------------------------------
DO $roles$
DECLARE
  dba_hint constant text :=
    'Ask a database administrator to run, once: CREATE ROLE secumon_app NOLOGIN; '
    'CREATE ROLE secumon_admin NOLOGIN BYPASSRLS; GRANT secumon_app, secumon_admin TO ' || quote_ident(current_user)
    || '; then start the collector again.';
BEGIN
  -- IF NOT EXISTS covers the usual case; the exception handler covers another database of the same cluster
  -- creating the role at the same moment (advisory locks are per database, roles are not).
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'secumon_app') THEN
    BEGIN
      CREATE ROLE secumon_app NOLOGIN;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN NULL;
      WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'cannot create role secumon_app: database user % may not create roles', current_user
          USING HINT = dba_hint;
    END;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'secumon_admin') THEN
    BEGIN
      CREATE ROLE secumon_admin NOLOGIN BYPASSRLS;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN NULL;
      WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'cannot create role secumon_admin (BYPASSRLS needs a superuser on PostgreSQL 15): '
          'database user % is not one', current_user
          USING HINT = dba_hint;
    END;
  END IF;

  -- Roles that already existed (created by a DBA, or by another database) must still be safe: secumon_app
  -- must not bypass RLS, nor lead to secumon_admin for a login that is granted only secumon_app.
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'secumon_app' AND (rolsuper OR rolbypassrls)) THEN
    RAISE EXCEPTION 'role secumon_app is SUPERUSER or BYPASSRLS, which would switch tenant isolation off'
      USING HINT = 'ALTER ROLE secumon_app NOSUPERUSER NOBYPASSRLS; then start the collector again.';
  END IF;
  IF pg_has_role('secumon_app', 'secumon_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'role secumon_app is a member of secumon_admin, so it could switch tenant isolation off'
      USING HINT = 'REVOKE secumon_admin FROM secumon_app; then start the collector again.';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'secumon_admin' AND (rolbypassrls OR rolsuper)) THEN
    RAISE EXCEPTION 'role secumon_admin exists without BYPASSRLS'
      USING HINT = 'As a superuser: ALTER ROLE secumon_admin BYPASSRLS; then start the collector again.';
  END IF;

  -- The collector's login must be able to SET ROLE to both (a superuser always can).
  IF NOT pg_has_role(current_user, 'secumon_app', 'MEMBER') THEN
    EXECUTE format('GRANT secumon_app TO %I', current_user);
  END IF;
  IF NOT pg_has_role(current_user, 'secumon_admin', 'MEMBER') THEN
    EXECUTE format('GRANT secumon_admin TO %I', current_user);
  END IF;

  EXECUTE format('GRANT USAGE ON SCHEMA %I TO secumon_app, secumon_admin', current_schema());
END
$roles$;

-- ---------------------------------------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------------------------------------

-- The tenant of the current transaction, or NULL when none is set (see the header for why NULLIF).
CREATE FUNCTION secumon_current_tenant() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT NULLIF(current_setting('secumon.tenant_id', true), '')::uuid $$;

-- BEFORE UPDATE trigger body: updated_at is the time of the last real change (the triggers below only fire
-- when some column changed, so a no-op UPDATE leaves it alone). now() is the transaction's start time.
CREATE FUNCTION secumon_set_updated_at() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

-- Enables and forces RLS on a tenant-owned table with the one tenant policy. Used by this and later
-- migrations so every table gets the same policy; not callable by the application roles.
CREATE FUNCTION secumon_enable_tenant_rls(tbl regclass, tenant_column name DEFAULT 'tenant_id') RETURNS void
  LANGUAGE plpgsql
  AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format(
    'CREATE POLICY tenant_isolation ON %s USING (%I = secumon_current_tenant()) WITH CHECK (%I = secumon_current_tenant())',
    tbl, tenant_column, tenant_column);
END
$$;
REVOKE EXECUTE ON FUNCTION secumon_enable_tenant_rls(regclass, name) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------------------
-- Tenants and users
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE tenants (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name       text NOT NULL CONSTRAINT tenants_name_not_blank CHECK (btrim(name) <> ''),
  slug       text NOT NULL CONSTRAINT tenants_slug_key UNIQUE
             CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  settings   jsonb NOT NULL DEFAULT '{}' CONSTRAINT tenants_settings_object CHECK (jsonb_typeof(settings) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id             uuid REFERENCES tenants (id) ON DELETE CASCADE, -- NULL exactly for superadmins
  email                 text NOT NULL CONSTRAINT users_email_format CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
  password_hash         text,  -- argon2id PHC string; NULL for single-sign-on-only or not yet activated accounts
  totp_secret_encrypted bytea, -- AES-256-GCM, key from the secret store (the seed stored it in clear)
  mfa_enabled           boolean NOT NULL DEFAULT false,
  role                  text NOT NULL DEFAULT 'viewer'
                        CONSTRAINT users_role_check CHECK (role IN ('viewer', 'operator', 'admin', 'superadmin')),
  sso_provider          text,
  sso_id                text,
  last_login            timestamptz,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_superadmin_has_no_tenant CHECK ((role = 'superadmin') = (tenant_id IS NULL)),
  CONSTRAINT users_mfa_needs_secret CHECK (NOT mfa_enabled OR totp_secret_encrypted IS NOT NULL),
  CONSTRAINT users_sso_both_or_neither CHECK ((sso_provider IS NULL) = (sso_id IS NULL))
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_sso_key ON users (sso_provider, sso_id) WHERE sso_provider IS NOT NULL;
CREATE INDEX users_tenant_email_idx ON users (tenant_id, lower(email));

-- ---------------------------------------------------------------------------------------------------------
-- Agents, probes, targets, SNMP credentials
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE agents (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name                 text NOT NULL CONSTRAINT agents_name_not_blank CHECK (btrim(name) <> ''),
  hostname             text,
  ip_addresses         inet[] NOT NULL DEFAULT '{}',
  os                   text,
  os_version           text,
  arch                 text,
  version              text,
  status               text NOT NULL DEFAULT 'pending'
                       CONSTRAINT agents_status_check
                       CHECK (status IN ('pending', 'online', 'offline', 'disabled', 'revoked')),
  last_seen            timestamptz,
  config               jsonb NOT NULL DEFAULT '{}' CONSTRAINT agents_config_object CHECK (jsonb_typeof(config) = 'object'),
  tags                 text[] NOT NULL DEFAULT '{}',
  -- one WireGuard interface serves the whole collector: keys and addresses are unique across tenants
  wireguard_public_key text CONSTRAINT agents_wireguard_public_key_key UNIQUE,
  wireguard_ip         inet CONSTRAINT agents_wireguard_ip_key UNIQUE,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT agents_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX agents_tenant_name_idx ON agents (tenant_id, name);
CREATE INDEX agents_tenant_status_idx ON agents (tenant_id, status);
CREATE INDEX agents_tags_idx ON agents USING gin (tags);

CREATE TABLE probes (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name                 text NOT NULL CONSTRAINT probes_name_not_blank CHECK (btrim(name) <> ''),
  location             text,
  type                 text NOT NULL DEFAULT 'external'
                       CONSTRAINT probes_type_check CHECK (type IN ('external', 'internal')),
  status               text NOT NULL DEFAULT 'pending'
                       CONSTRAINT probes_status_check
                       CHECK (status IN ('pending', 'online', 'offline', 'disabled', 'revoked')),
  last_seen            timestamptz,
  config               jsonb NOT NULL DEFAULT '{}' CONSTRAINT probes_config_object CHECK (jsonb_typeof(config) = 'object'),
  tags                 text[] NOT NULL DEFAULT '{}',
  wireguard_public_key text CONSTRAINT probes_wireguard_public_key_key UNIQUE,
  wireguard_ip         inet CONSTRAINT probes_wireguard_ip_key UNIQUE,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT probes_tenant_id_id_key UNIQUE (tenant_id, id),
  CONSTRAINT probes_tenant_name_key UNIQUE (tenant_id, name)
);
CREATE INDEX probes_tenant_status_idx ON probes (tenant_id, status);
CREATE INDEX probes_tags_idx ON probes USING gin (tags);

CREATE TABLE targets (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name       text NOT NULL CONSTRAINT targets_name_not_blank CHECK (btrim(name) <> ''),
  address    text NOT NULL CONSTRAINT targets_address_not_blank CHECK (btrim(address) <> ''), -- IP, CIDR, host name or URL
  -- the seed gives no list of kinds; a later migration can replace this format check with one
  type       text NOT NULL CONSTRAINT targets_type_format CHECK (type ~ '^[a-z][a-z0-9_]{0,31}$'),
  enabled    boolean NOT NULL DEFAULT true,
  tests      jsonb NOT NULL DEFAULT '[]' CONSTRAINT targets_tests_array CHECK (jsonb_typeof(tests) = 'array'),
  tags       text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT targets_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX targets_tenant_name_idx ON targets (tenant_id, name);
CREATE INDEX targets_tags_idx ON targets USING gin (tags);

-- Which probes scan which targets (the seed's targets.probe_ids uuid[] could point at deleted probes or at
-- another tenant's). Deleting either side removes the assignment.
CREATE TABLE target_probes (
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  target_id  uuid NOT NULL,
  probe_id   uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (target_id, probe_id),
  FOREIGN KEY (tenant_id, target_id) REFERENCES targets (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, probe_id) REFERENCES probes (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX target_probes_probe_idx ON target_probes (tenant_id, probe_id); -- a probe's assignments
CREATE INDEX target_probes_target_idx ON target_probes (tenant_id, target_id);

CREATE TABLE snmp_credentials (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name                   text NOT NULL CONSTRAINT snmp_credentials_name_not_blank CHECK (btrim(name) <> ''),
  version                text NOT NULL CONSTRAINT snmp_credentials_version_check CHECK (version IN ('v1', 'v2c', 'v3')),
  community_encrypted    bytea, -- secrets: AES-256-GCM, key from the secret store
  v3_username            text,
  v3_auth_proto          text CONSTRAINT snmp_credentials_v3_auth_proto_check
                         CHECK (v3_auth_proto IN ('MD5', 'SHA', 'SHA224', 'SHA256', 'SHA384', 'SHA512')),
  v3_auth_pass_encrypted bytea,
  v3_priv_proto          text CONSTRAINT snmp_credentials_v3_priv_proto_check
                         CHECK (v3_priv_proto IN ('DES', 'AES', 'AES192', 'AES256')),
  v3_priv_pass_encrypted bytea,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT snmp_credentials_tenant_id_id_key UNIQUE (tenant_id, id),
  CONSTRAINT snmp_credentials_tenant_name_key UNIQUE (tenant_id, name),
  CONSTRAINT snmp_credentials_v1_v2c_need_community CHECK (version = 'v3' OR community_encrypted IS NOT NULL),
  CONSTRAINT snmp_credentials_v3_needs_username CHECK (version <> 'v3' OR v3_username IS NOT NULL),
  CONSTRAINT snmp_credentials_v3_auth_pair CHECK ((v3_auth_proto IS NULL) = (v3_auth_pass_encrypted IS NULL)),
  CONSTRAINT snmp_credentials_v3_priv_pair CHECK ((v3_priv_proto IS NULL) = (v3_priv_pass_encrypted IS NULL)),
  CONSTRAINT snmp_credentials_v3_priv_needs_auth CHECK (v3_priv_proto IS NULL OR v3_auth_proto IS NOT NULL)
);

-- ---------------------------------------------------------------------------------------------------------
-- Alerting
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE notification_channels (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name             text NOT NULL CONSTRAINT notification_channels_name_not_blank CHECK (btrim(name) <> ''),
  type             text NOT NULL
                   CONSTRAINT notification_channels_type_check CHECK (type IN ('email', 'slack', 'webhook', 'sms')),
  config_encrypted bytea NOT NULL, -- AES-256-GCM JSON: addresses, webhook URLs and secrets, tokens
  enabled          boolean NOT NULL DEFAULT true,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT notification_channels_tenant_id_id_key UNIQUE (tenant_id, id),
  CONSTRAINT notification_channels_tenant_name_key UNIQUE (tenant_id, name)
);

CREATE TABLE alert_rules (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name         text NOT NULL CONSTRAINT alert_rules_name_not_blank CHECK (btrim(name) <> ''),
  description  text,
  enabled      boolean NOT NULL DEFAULT true,
  severity     text NOT NULL CONSTRAINT alert_rules_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
  type         text NOT NULL
               CONSTRAINT alert_rules_type_check CHECK (type IN ('threshold', 'change', 'anomaly', 'absent')),
  conditions   jsonb NOT NULL,
  for_duration interval NOT NULL DEFAULT '0 seconds'
               CONSTRAINT alert_rules_for_duration_not_negative CHECK (for_duration >= interval '0 seconds'),
  labels       jsonb NOT NULL DEFAULT '{}' CONSTRAINT alert_rules_labels_object CHECK (jsonb_typeof(labels) = 'object'),
  annotations  jsonb NOT NULL DEFAULT '{}'
               CONSTRAINT alert_rules_annotations_object CHECK (jsonb_typeof(annotations) = 'object'),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT alert_rules_tenant_id_id_key UNIQUE (tenant_id, id),
  CONSTRAINT alert_rules_tenant_name_key UNIQUE (tenant_id, name)
);

-- Which channels a rule notifies (replaces the seed's alert_rules.notification_channels uuid[]: deleting a
-- channel now removes it from its rules instead of leaving a dangling id).
CREATE TABLE alert_rule_channels (
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  rule_id    uuid NOT NULL,
  channel_id uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rule_id, channel_id),
  FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, channel_id) REFERENCES notification_channels (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX alert_rule_channels_rule_idx ON alert_rule_channels (tenant_id, rule_id);
CREATE INDEX alert_rule_channels_channel_idx ON alert_rule_channels (tenant_id, channel_id);

-- History outlives what it refers to: deleting a rule, agent, probe, target or user clears the reference
-- (PostgreSQL 15's SET NULL (column) keeps tenant_id), the row stays.
CREATE TABLE alert_history (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  rule_id         uuid,
  agent_id        uuid,
  probe_id        uuid,
  target_id       uuid,
  severity        text NOT NULL CONSTRAINT alert_history_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
  status          text NOT NULL CONSTRAINT alert_history_status_check CHECK (status IN ('firing', 'resolved')),
  message         text,
  value           double precision,
  threshold       double precision,
  fired_at        timestamptz NOT NULL,
  resolved_at     timestamptz,
  acknowledged_at timestamptz,
  acknowledged_by uuid REFERENCES users (id) ON DELETE SET NULL,
  labels          jsonb NOT NULL DEFAULT '{}' CONSTRAINT alert_history_labels_object CHECK (jsonb_typeof(labels) = 'object'),
  annotations     jsonb NOT NULL DEFAULT '{}'
                  CONSTRAINT alert_history_annotations_object CHECK (jsonb_typeof(annotations) = 'object'),
  CONSTRAINT alert_history_rule_fkey FOREIGN KEY (tenant_id, rule_id)
    REFERENCES alert_rules (tenant_id, id) ON DELETE SET NULL (rule_id),
  CONSTRAINT alert_history_agent_fkey FOREIGN KEY (tenant_id, agent_id)
    REFERENCES agents (tenant_id, id) ON DELETE SET NULL (agent_id),
  CONSTRAINT alert_history_probe_fkey FOREIGN KEY (tenant_id, probe_id)
    REFERENCES probes (tenant_id, id) ON DELETE SET NULL (probe_id),
  CONSTRAINT alert_history_target_fkey FOREIGN KEY (tenant_id, target_id)
    REFERENCES targets (tenant_id, id) ON DELETE SET NULL (target_id),
  CONSTRAINT alert_history_resolved_iff_resolved_at CHECK ((status = 'resolved') = (resolved_at IS NOT NULL)),
  CONSTRAINT alert_history_resolved_after_fired CHECK (resolved_at IS NULL OR resolved_at >= fired_at),
  CONSTRAINT alert_history_ack_by_needs_ack_at CHECK (acknowledged_by IS NULL OR acknowledged_at IS NOT NULL)
);
CREATE INDEX alert_history_tenant_fired_idx ON alert_history (tenant_id, fired_at DESC);
CREATE INDEX alert_history_tenant_firing_idx ON alert_history (tenant_id, fired_at DESC) WHERE status = 'firing';
CREATE INDEX alert_history_rule_idx ON alert_history (tenant_id, rule_id, fired_at DESC) WHERE rule_id IS NOT NULL;
CREATE INDEX alert_history_agent_idx ON alert_history (tenant_id, agent_id) WHERE agent_id IS NOT NULL;
CREATE INDEX alert_history_probe_idx ON alert_history (tenant_id, probe_id) WHERE probe_id IS NOT NULL;
CREATE INDEX alert_history_target_idx ON alert_history (tenant_id, target_id) WHERE target_id IS NOT NULL;
CREATE INDEX alert_history_acknowledged_by_idx ON alert_history (acknowledged_by) WHERE acknowledged_by IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------
-- Audit log (append-only for the application)
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE audit_logs (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     uuid REFERENCES tenants (id) ON DELETE CASCADE, -- NULL: platform event (see header)
  user_id       uuid REFERENCES users (id) ON DELETE SET NULL,
  actor         text NOT NULL, -- who, readable after the user is deleted: an e-mail, 'agent:<id>', 'system'
  action        text NOT NULL,
  resource_type text NOT NULL,
  resource_id   uuid,
  old_value     jsonb,
  new_value     jsonb,
  ip_address    inet,
  user_agent    text,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_tenant_created_idx ON audit_logs (tenant_id, created_at DESC);
CREATE INDEX audit_logs_created_idx ON audit_logs (created_at); -- retention, platform-wide view
CREATE INDEX audit_logs_user_idx ON audit_logs (user_id) WHERE user_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------
-- Credentials the next features need: enrollment tokens, API keys, refresh tokens. Only hashes are stored
-- (SHA-256 of a high-entropy random token: no salt needed), looked up by hash as secumon_admin.
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE enrollment_tokens (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  label          text NOT NULL DEFAULT '',
  principal_kind text NOT NULL DEFAULT 'agent'
                 CONSTRAINT enrollment_tokens_principal_kind_check CHECK (principal_kind IN ('agent', 'probe', 'collector')),
  token_hash     bytea NOT NULL CONSTRAINT enrollment_tokens_token_hash_key UNIQUE
                 CONSTRAINT enrollment_tokens_token_hash_sha256 CHECK (octet_length(token_hash) = 32),
  expires_at     timestamptz NOT NULL,
  max_uses       integer CONSTRAINT enrollment_tokens_max_uses_positive CHECK (max_uses > 0), -- NULL: unlimited
  uses           integer NOT NULL DEFAULT 0,
  revoked_at     timestamptz,
  created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  -- backstop for the consuming UPDATE (… WHERE max_uses IS NULL OR uses < max_uses): never over-used
  CONSTRAINT enrollment_tokens_uses_in_range CHECK (uses >= 0 AND (max_uses IS NULL OR uses <= max_uses))
);
CREATE INDEX enrollment_tokens_tenant_created_idx ON enrollment_tokens (tenant_id, created_at DESC);

CREATE TABLE api_keys (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name         text NOT NULL CONSTRAINT api_keys_name_not_blank CHECK (btrim(name) <> ''),
  prefix       text NOT NULL, -- the key's first characters, shown in the UI to recognise it
  key_hash     bytea NOT NULL CONSTRAINT api_keys_key_hash_key UNIQUE
               CONSTRAINT api_keys_key_hash_sha256 CHECK (octet_length(key_hash) = 32),
  -- an API key acts inside its tenant: never superadmin
  role         text NOT NULL DEFAULT 'viewer' CONSTRAINT api_keys_role_check CHECK (role IN ('viewer', 'operator', 'admin')),
  created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
  expires_at   timestamptz,
  last_used_at timestamptz,
  revoked_at   timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_tenant_created_idx ON api_keys (tenant_id, created_at DESC);

-- Rotating refresh tokens with reuse detection: every token issued from one login shares family_id; using a
-- token that was already rotated revokes the whole family. Owned by a user, not a tenant (superadmins have
-- none), and only ever reached by hash before a tenant is known: secumon_admin only. RLS is still forced,
-- with no policy, so any other non-bypass role sees nothing even if granted by mistake.
CREATE TABLE refresh_tokens (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  family_id   uuid NOT NULL,
  token_hash  bytea NOT NULL CONSTRAINT refresh_tokens_token_hash_key UNIQUE
              CONSTRAINT refresh_tokens_token_hash_sha256 CHECK (octet_length(token_hash) = 32),
  expires_at  timestamptz NOT NULL,
  rotated_at  timestamptz, -- exchanged for its successor
  revoked_at  timestamptz,
  ip_address  inet,
  user_agent  text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at); -- purge

-- ---------------------------------------------------------------------------------------------------------
-- updated_at triggers (only when a column actually changed)
-- ---------------------------------------------------------------------------------------------------------
CREATE TRIGGER tenants_updated_at BEFORE UPDATE ON tenants
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();
CREATE TRIGGER agents_updated_at BEFORE UPDATE ON agents
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();
CREATE TRIGGER probes_updated_at BEFORE UPDATE ON probes
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();
CREATE TRIGGER targets_updated_at BEFORE UPDATE ON targets
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();
CREATE TRIGGER snmp_credentials_updated_at BEFORE UPDATE ON snmp_credentials
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();
CREATE TRIGGER notification_channels_updated_at BEFORE UPDATE ON notification_channels
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();
CREATE TRIGGER alert_rules_updated_at BEFORE UPDATE ON alert_rules
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();
CREATE TRIGGER enrollment_tokens_updated_at BEFORE UPDATE ON enrollment_tokens
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();
CREATE TRIGGER api_keys_updated_at BEFORE UPDATE ON api_keys
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();

-- ---------------------------------------------------------------------------------------------------------
-- Row-level security
-- ---------------------------------------------------------------------------------------------------------
SELECT secumon_enable_tenant_rls('tenants', 'id'); -- a tenant session sees its own tenant row only
SELECT secumon_enable_tenant_rls('users');
SELECT secumon_enable_tenant_rls('agents');
SELECT secumon_enable_tenant_rls('probes');
SELECT secumon_enable_tenant_rls('targets');
SELECT secumon_enable_tenant_rls('target_probes');
SELECT secumon_enable_tenant_rls('snmp_credentials');
SELECT secumon_enable_tenant_rls('notification_channels');
SELECT secumon_enable_tenant_rls('alert_rules');
SELECT secumon_enable_tenant_rls('alert_rule_channels');
SELECT secumon_enable_tenant_rls('alert_history');
SELECT secumon_enable_tenant_rls('audit_logs');
SELECT secumon_enable_tenant_rls('enrollment_tokens');
SELECT secumon_enable_tenant_rls('api_keys');
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;

-- ---------------------------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------------------------
GRANT SELECT, UPDATE ON tenants TO secumon_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON
  users, agents, probes, targets, target_probes, snmp_credentials, notification_channels, alert_rules,
  alert_rule_channels, alert_history, enrollment_tokens, api_keys
  TO secumon_app;
GRANT SELECT, INSERT ON audit_logs TO secumon_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON
  tenants, users, agents, probes, targets, target_probes, snmp_credentials, notification_channels, alert_rules,
  alert_rule_channels, alert_history, audit_logs, enrollment_tokens, api_keys, refresh_tokens
  TO secumon_admin;
