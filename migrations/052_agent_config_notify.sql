-- 052_agent_config_notify: a NOTIFY when an agent's configuration changes, so the gateway holding its
-- Connect stream pushes the new configuration at once (issue #3: collector-to-agent config changes).
--   * secumon_agent_config_changed, payload {"id": uuid, "tenant_id": uuid}. The configuration itself is not
--     in the payload (NOTIFY payloads are limited to 8000 bytes): the gateway reads it from the row.

CREATE FUNCTION secumon_notify_agent_config_changed() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
BEGIN
  PERFORM pg_notify('secumon_agent_config_changed',
    json_build_object('id', NEW.id, 'tenant_id', NEW.tenant_id)::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER agents_notify_config AFTER UPDATE OF config ON agents
  FOR EACH ROW WHEN (OLD.config IS DISTINCT FROM NEW.config)
  EXECUTE FUNCTION secumon_notify_agent_config_changed();
