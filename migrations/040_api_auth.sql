-- 040_api_auth: what the API's authentication needs beyond 001_initial.
--   * users: account lockout with back-off (failed_logins, locked_until, lockouts), TOTP replay protection
--     (totp_last_step: the last accepted 30-second step; a code of that step or earlier is refused), a display
--     name, and disabled accounts.
--   * user_recovery_codes: one-time MFA recovery codes, SHA-256 of a high-entropy code (no salt needed).
--     Owned by a user, not a tenant (superadmins have none), reached only during sign-in: secumon_admin only,
--     RLS forced with no policy (like refresh_tokens).
ALTER TABLE users
  ADD COLUMN name           text,
  ADD COLUMN disabled       boolean NOT NULL DEFAULT false,
  ADD COLUMN failed_logins  integer NOT NULL DEFAULT 0 CONSTRAINT users_failed_logins_not_negative CHECK (failed_logins >= 0),
  ADD COLUMN lockouts       integer NOT NULL DEFAULT 0 CONSTRAINT users_lockouts_not_negative CHECK (lockouts >= 0),
  ADD COLUMN locked_until   timestamptz,
  ADD COLUMN totp_last_step bigint;

CREATE TABLE user_recovery_codes (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  code_hash  bytea NOT NULL CONSTRAINT user_recovery_codes_code_hash_key UNIQUE
             CONSTRAINT user_recovery_codes_code_hash_sha256 CHECK (octet_length(code_hash) = 32),
  used_at    timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_recovery_codes_user_idx ON user_recovery_codes (user_id);
ALTER TABLE user_recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_recovery_codes FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON user_recovery_codes TO secumon_admin;
