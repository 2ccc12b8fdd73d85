-- 010_gateway: what the gateway role (issue #3) keeps in the database.
--   * gateway_ca: the collector's certificate authority, shared by every gateway instance. One row. The private
--     key is sealed with the keyring (AES-256-GCM, context "gateway_ca.private_key"), never stored in clear.
--     Platform-level (no tenant): only the collector's login role reads it; neither application role is granted.
--   * secumon_principal_changed: a NOTIFY on every status change or deletion of an agent or probe, so each
--     gateway closes a revoked/deleted principal's open streams at once and refuses its next call.
--     Payload: {"kind": "agent"|"probe", "id": uuid, "tenant_id": uuid, "status": <new status>|"deleted"}.

CREATE TABLE gateway_ca (
  id         smallint PRIMARY KEY DEFAULT 1 CONSTRAINT gateway_ca_single_row CHECK (id = 1),
  cert_pem   text NOT NULL,
  key_sealed bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION secumon_notify_principal_changed() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
DECLARE
  r record;
BEGIN
  IF TG_OP = 'DELETE' THEN
    r := OLD;
  ELSE
    r := NEW;
  END IF;
  PERFORM pg_notify('secumon_principal_changed', json_build_object(
    'kind', TG_ARGV[0],
    'id', r.id,
    'tenant_id', r.tenant_id,
    'status', CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE NEW.status END)::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER agents_notify_status AFTER UPDATE OF status ON agents
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION secumon_notify_principal_changed('agent');
CREATE TRIGGER agents_notify_delete AFTER DELETE ON agents
  FOR EACH ROW EXECUTE FUNCTION secumon_notify_principal_changed('agent');
CREATE TRIGGER probes_notify_status AFTER UPDATE OF status ON probes
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION secumon_notify_principal_changed('probe');
CREATE TRIGGER probes_notify_delete AFTER DELETE ON probes
  FOR EACH ROW EXECUTE FUNCTION secumon_notify_principal_changed('probe');
