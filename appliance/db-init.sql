-- The appliance's database: login role `secumon` (peer authentication through the socket: no password exists),
-- the roles the schema uses, and the database. Idempotent. Run as postgres by appliance/build (which then applies
-- the migrations into the image) and by secumon-firstboot (installed as /usr/local/share/secumon/db-init.sql).
SET client_min_messages = warning;
DO $$ BEGIN
  -- BYPASSRLS: backups (pg_dump) must read every tenant's rows; the API still runs each request as secumon_app
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'secumon') THEN CREATE ROLE secumon LOGIN BYPASSRLS; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'secumon_app') THEN CREATE ROLE secumon_app NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'secumon_admin') THEN CREATE ROLE secumon_admin NOLOGIN BYPASSRLS; END IF;
END $$;
GRANT secumon_app, secumon_admin TO secumon;
SELECT 'CREATE DATABASE secumon OWNER secumon ENCODING ''UTF8'' TEMPLATE template0'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'secumon') \gexec
