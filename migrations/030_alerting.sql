-- 030_alerting: what the alerter (src/alerter) needs beyond 001's alert_rules / alert_rule_channels /
-- notification_channels / alert_history: per-series alert instances with their state, silences and
-- maintenance windows, acknowledgements, escalation steps, and the durable notification outbox with every
-- delivery attempt.
--
-- Who writes what
--   * The alerter (role `alerter`, as secumon_admin: it works across tenants) writes alert_instances,
--     alert_history, notification_outbox (kinds firing/resolved/repeat/escalation) and
--     notification_attempts.
--   * The API (as secumon_app, one tenant) writes alert_rules (validated with src/alerter/rules/validate.ts),
--     alert_rule_channels, alert_rule_escalations, notification_channels, alert_silences,
--     alert_acknowledgements, and may INSERT a notification_outbox row of kind 'test' (see below).
--   * Acknowledging = INSERT INTO alert_acknowledgements (tenant_id, instance_id, user_id, author, comment);
--     the trigger below copies it onto the instance and its alert_history row. The alerter never
--     overwrites an acknowledgement; a new firing episode of the same instance starts unacknowledged.

-- ---------------------------------------------------------------------------------------------------------
-- Rule options the seed does not have
-- ---------------------------------------------------------------------------------------------------------
ALTER TABLE alert_rules
  -- Once firing, stay firing this long after the condition stops holding (against flapping).
  ADD COLUMN keep_firing_for interval NOT NULL DEFAULT '0 seconds'
    CONSTRAINT alert_rules_keep_firing_for_not_negative CHECK (keep_firing_for >= interval '0 seconds'),
  -- Re-send an unacknowledged firing alert this often. NULL = alerter.notification_cooldown from the config.
  ADD COLUMN repeat_interval interval
    CONSTRAINT alert_rules_repeat_interval_positive CHECK (repeat_interval IS NULL OR repeat_interval > interval '0 seconds');

COMMENT ON COLUMN alert_rules.conditions IS
  'JSON object {match: "all"|"any", scope: {agents, probes, targets: uuid[], tags: text[]}, conditions: [...]}; '
  'see src/alerter/rules/types.ts and validate it with src/alerter/rules/validate.ts before writing.';

-- Escalation: when a firing instance is still unacknowledged `after` its firing time, the channels of the
-- step are notified too (level 0 = the rule's own alert_rule_channels). Several rows of one level = several
-- channels of that step; `after` must be the same for all rows of a level (the alerter takes the smallest).
CREATE TABLE alert_rule_escalations (
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  rule_id    uuid NOT NULL,
  level      smallint NOT NULL CONSTRAINT alert_rule_escalations_level_range CHECK (level BETWEEN 1 AND 10),
  after      interval NOT NULL CONSTRAINT alert_rule_escalations_after_positive CHECK (after > interval '0 seconds'),
  channel_id uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rule_id, level, channel_id),
  FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, channel_id) REFERENCES notification_channels (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX alert_rule_escalations_rule_idx ON alert_rule_escalations (tenant_id, rule_id);
CREATE INDEX alert_rule_escalations_channel_idx ON alert_rule_escalations (tenant_id, channel_id);

-- ---------------------------------------------------------------------------------------------------------
-- Alert instances: one row per (rule, series), the evaluator's state, kept across restarts
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE alert_instances (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  rule_id           uuid NOT NULL,
  fingerprint       text NOT NULL,  -- stable hash of `labels`, identifies the series within the rule
  labels            jsonb NOT NULL DEFAULT '{}' CONSTRAINT alert_instances_labels_object CHECK (jsonb_typeof(labels) = 'object'),
  -- pending: condition holds, for_duration not yet elapsed; firing; resolved: fired then stopped holding.
  -- (inactive instances have no row.)
  state             text NOT NULL CONSTRAINT alert_instances_state_check CHECK (state IN ('pending', 'firing', 'resolved')),
  active_at         timestamptz NOT NULL,  -- since when the condition holds (this episode)
  fired_at          timestamptz,           -- when it turned firing (this episode)
  resolved_at       timestamptz,
  keep_firing_since timestamptz,           -- condition stopped holding while firing; resolves after keep_firing_for
  value             double precision,      -- value at the last state change
  threshold         double precision,
  history_id        uuid,                  -- alert_history row of this firing episode
  notified          boolean NOT NULL DEFAULT false, -- the firing notification of this episode was queued
  last_sent_at      timestamptz,           -- last notification queued (firing, repeat or escalation)
  repeat_count      integer NOT NULL DEFAULT 0,
  escalation_level  smallint NOT NULL DEFAULT 0,    -- highest escalation step notified this episode
  acknowledged_at   timestamptz,           -- set by the alert_acknowledgements trigger
  acknowledged_by   uuid REFERENCES users (id) ON DELETE SET NULL,
  ack_comment       text,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT alert_instances_tenant_id_id_key UNIQUE (tenant_id, id),
  CONSTRAINT alert_instances_rule_fingerprint_key UNIQUE (rule_id, fingerprint),
  FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX alert_instances_tenant_state_idx ON alert_instances (tenant_id, state, active_at DESC);
CREATE INDEX alert_instances_acknowledged_idx ON alert_instances (acknowledged_at) WHERE acknowledged_at IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------
-- Silences and maintenance windows: while one is active and all its matchers match an instance's labels,
-- the instance is evaluated as usual but nobody is notified. Labels of an instance: rule_id, rule (name),
-- severity, the series' own labels (agent_id, probe_id, target_id, device, mountpoint, test_type, ...) and the
-- rule's labels. matchers: [{"name": "agent_id", "op": "=", "value": "…"}], op one of = != =~ !~ (RE2-like
-- regular expressions, anchored). An empty list matches every alert of the tenant.
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE alert_silences (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  kind       text NOT NULL DEFAULT 'silence' CONSTRAINT alert_silences_kind_check CHECK (kind IN ('silence', 'maintenance')),
  matchers   jsonb NOT NULL DEFAULT '[]' CONSTRAINT alert_silences_matchers_array CHECK (jsonb_typeof(matchers) = 'array'),
  starts_at  timestamptz NOT NULL,
  ends_at    timestamptz NOT NULL,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  author     text NOT NULL CONSTRAINT alert_silences_author_not_blank CHECK (btrim(author) <> ''),
  comment    text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT alert_silences_ends_after_start CHECK (ends_at > starts_at)
);
CREATE INDEX alert_silences_active_idx ON alert_silences (ends_at, starts_at);
CREATE INDEX alert_silences_tenant_idx ON alert_silences (tenant_id, ends_at DESC);
CREATE TRIGGER alert_silences_updated_at BEFORE UPDATE ON alert_silences
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();

-- ---------------------------------------------------------------------------------------------------------
-- Acknowledgements (who, when, comment). Append-only; each one stops repeats and escalation of the
-- instance's current firing episode.
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE alert_acknowledgements (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  instance_id uuid NOT NULL,
  history_id  uuid,  -- filled by the trigger: the episode acknowledged
  user_id     uuid REFERENCES users (id) ON DELETE SET NULL,
  author      text NOT NULL CONSTRAINT alert_acknowledgements_author_not_blank CHECK (btrim(author) <> ''),
  comment     text NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (tenant_id, instance_id) REFERENCES alert_instances (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX alert_acknowledgements_instance_idx ON alert_acknowledgements (tenant_id, instance_id, created_at DESC);

CREATE FUNCTION secumon_alert_acknowledge() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
DECLARE
  inst alert_instances%ROWTYPE;
BEGIN
  SELECT * INTO inst FROM alert_instances WHERE id = NEW.instance_id AND tenant_id = NEW.tenant_id FOR UPDATE;
  IF inst.state IS DISTINCT FROM 'firing' THEN
    RAISE EXCEPTION 'alert % is not firing, so there is nothing to acknowledge', NEW.instance_id
      USING ERRCODE = 'check_violation', HINT = 'List firing alerts and acknowledge one of them.';
  END IF;
  NEW.history_id := inst.history_id;
  UPDATE alert_instances
     SET acknowledged_at = NEW.created_at, acknowledged_by = NEW.user_id, ack_comment = NEW.comment,
         updated_at = now()
   WHERE id = inst.id;
  IF inst.history_id IS NOT NULL THEN
    UPDATE alert_history SET acknowledged_at = NEW.created_at, acknowledged_by = NEW.user_id
     WHERE id = inst.history_id AND tenant_id = NEW.tenant_id AND acknowledged_at IS NULL;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER alert_acknowledgements_apply BEFORE INSERT ON alert_acknowledgements
  FOR EACH ROW EXECUTE FUNCTION secumon_alert_acknowledge();

-- ---------------------------------------------------------------------------------------------------------
-- Notification outbox: one row = one message to one channel, written in the same transaction as the state
-- change that caused it, delivered by workers (every alerter instance runs some; rows are claimed with
-- FOR UPDATE SKIP LOCKED and a lease, so a crashed worker's row is retried once its lease expires).
--   kind: firing | resolved | repeat | escalation (the alerter) | test (the API's "send test notification":
--         INSERT (tenant_id, channel_id, kind, idempotency_key, payload) VALUES (…, 'test', gen_random_uuid()::text,
--         '{"message": "…", "requested_by": "…"}') RETURNING id; then poll status until delivered or failed)
--   idempotency_key: unique; sent with the message (webhook header Idempotency-Key, email Message-ID) so a
--         retry after a crash is recognisable by the receiver.
--   payload: what the templates render: {rule, severity, status, alerts: [{labels, value, threshold, …}], …}
--   status: pending → sending (claimed, lease until locked_until) → delivered | pending (retry at
--         next_attempt_at, exponential backoff) | failed (gave up: last_error says why).
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE notification_outbox (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  channel_id      uuid NOT NULL,
  rule_id         uuid,
  kind            text NOT NULL
                  CONSTRAINT notification_outbox_kind_check CHECK (kind IN ('firing', 'resolved', 'repeat', 'escalation', 'test')),
  idempotency_key text NOT NULL CONSTRAINT notification_outbox_idempotency_key_key UNIQUE,
  payload         jsonb NOT NULL DEFAULT '{}' CONSTRAINT notification_outbox_payload_object CHECK (jsonb_typeof(payload) = 'object'),
  status          text NOT NULL DEFAULT 'pending'
                  CONSTRAINT notification_outbox_status_check CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  locked_until    timestamptz,
  delivered_to    text[] NOT NULL DEFAULT '{}', -- recipients already reached (SMS to several numbers)
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  delivered_at    timestamptz,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT notification_outbox_tenant_id_id_key UNIQUE (tenant_id, id),
  FOREIGN KEY (tenant_id, channel_id) REFERENCES notification_channels (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT notification_outbox_rule_fkey FOREIGN KEY (tenant_id, rule_id)
    REFERENCES alert_rules (tenant_id, id) ON DELETE SET NULL (rule_id)
);
CREATE INDEX notification_outbox_due_idx ON notification_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_outbox_leased_idx ON notification_outbox (locked_until) WHERE status = 'sending';
CREATE INDEX notification_outbox_tenant_created_idx ON notification_outbox (tenant_id, created_at DESC);
CREATE TRIGGER notification_outbox_updated_at BEFORE UPDATE ON notification_outbox
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION secumon_set_updated_at();

-- Every delivery attempt, successful or not.
CREATE TABLE notification_attempts (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  outbox_id   uuid NOT NULL,
  attempt     integer NOT NULL,
  started_at  timestamptz NOT NULL,
  finished_at timestamptz NOT NULL DEFAULT now(),
  ok          boolean NOT NULL,
  status_code integer,  -- HTTP status or SMTP reply code when there was one
  error       text,     -- what went wrong (never a credential)
  worker      text NOT NULL DEFAULT '',
  FOREIGN KEY (tenant_id, outbox_id) REFERENCES notification_outbox (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX notification_attempts_outbox_idx ON notification_attempts (tenant_id, outbox_id, attempt);

-- ---------------------------------------------------------------------------------------------------------
-- Row-level security and privileges
-- ---------------------------------------------------------------------------------------------------------
SELECT secumon_enable_tenant_rls('alert_rule_escalations');
SELECT secumon_enable_tenant_rls('alert_instances');
SELECT secumon_enable_tenant_rls('alert_silences');
SELECT secumon_enable_tenant_rls('alert_acknowledgements');
SELECT secumon_enable_tenant_rls('notification_outbox');
SELECT secumon_enable_tenant_rls('notification_attempts');

GRANT SELECT, INSERT, UPDATE, DELETE ON alert_rule_escalations, alert_silences TO secumon_app;
GRANT SELECT ON alert_instances, notification_attempts TO secumon_app;
-- the acknowledgement trigger runs as the API's role: it may set exactly these columns
GRANT UPDATE (acknowledged_at, acknowledged_by, ack_comment, updated_at) ON alert_instances TO secumon_app;
GRANT SELECT, INSERT ON alert_acknowledgements, notification_outbox TO secumon_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON
  alert_rule_escalations, alert_instances, alert_silences, alert_acknowledgements, notification_outbox,
  notification_attempts
  TO secumon_admin;
