/**
 * migrations/001_initial.sql against a real PostgreSQL: row-level security as the application role, CHECK
 * constraints on enum-like columns, the updated_at trigger, cross-tenant references and ON DELETE behaviour.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import postgres from "postgres";
import { silentLogger } from "../../src/observability/logger.ts";
import { connect, type Sql, type Tx, withAdmin, withTenant } from "../../src/storage/db.ts";
import { loadMigrationsFromDir, runMigrations } from "../../src/storage/migrate.ts";
import { emptyDatabase } from "../support/pg.ts";

const A = "aaaaaaaa-0000-4000-8000-00000000000a";
const B = "bbbbbbbb-0000-4000-8000-00000000000b";
let url: string;
let sql: Sql; // the login user: the schema owner, a superuser on the test cluster (bypasses RLS)
const pools: Sql[] = [];

beforeAll(async () => {
  url = await emptyDatabase();
  sql = open(4);
  await runMigrations(
    sql,
    await loadMigrationsFromDir(join(import.meta.dir, "../../migrations")),
    silentLogger(),
  );
  await sql`insert into tenants (id, name, slug) values (${A}, 'Tenant A', 'tenant-a'), (${B}, 'Tenant B', 'tenant-b')`;
  await sql`insert into agents (tenant_id, name) values (${A}, 'a-1'), (${A}, 'a-2'), (${B}, 'b-1')`;
});
afterAll(async () => {
  await Promise.all(pools.splice(0).map((p) => p.end({ timeout: 2 })));
});

function open(max: number): Sql {
  const p = connect(url, { max, log: silentLogger() });
  pools.push(p);
  return p;
}

async function pgError(p: Promise<unknown>): Promise<InstanceType<typeof postgres.PostgresError>> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(postgres.PostgresError);
  return e as InstanceType<typeof postgres.PostgresError>;
}

/** A transaction as secumon_app without any tenant set. */
function asAppWithoutTenant<T>(db: Sql, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.begin(async (tx) => {
    await tx`set local role secumon_app`;
    return fn(tx);
  }) as Promise<T>;
}

const agentNames = (tx: Tx) =>
  tx<{ name: string }[]>`select name from agents order by name`.then((r) => r.map((x) => x.name));

describe("row-level security", () => {
  test("every table with a tenant_id column has RLS enabled and forced, with a policy", async () => {
    const rows = await sql<{ table: string; enabled: boolean; forced: boolean; policies: number }[]>`
      select c.relname as table, c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
             (select count(*)::int from pg_policy p where p.polrelid = c.oid) as policies
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p') and n.nspname = current_schema()
        and (exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
             or c.relname = 'tenants')
      order by 1`;
    expect(rows.length).toBeGreaterThanOrEqual(14);
    expect(rows.filter((r) => !r.enabled || !r.forced || r.policies < 1)).toEqual([]);
  });

  test("secumon_app with no tenant set sees no rows and can insert none", async () => {
    await asAppWithoutTenant(sql, async (tx) => {
      expect(await agentNames(tx)).toEqual([]);
      expect(await tx`select id from tenants`).toHaveLength(0);
    });
    const e = await pgError(
      asAppWithoutTenant(sql, (tx) => tx`insert into agents (tenant_id, name) values (${A}, 'sneaky')`),
    );
    expect(e.code).toBe("42501");
  });

  test("a pooled connection that ran a tenant transaction carries no tenant into the next one", async () => {
    const single = open(1); // one connection: the second transaction reuses the first's session
    expect(await withTenant(single, A, agentNames)).toEqual(["a-1", "a-2"]);
    // the setting now reads '' on this session, which must mean "no tenant", not an error
    expect(await asAppWithoutTenant(single, agentNames)).toEqual([]);
    const [r] = await single<{ user: string }[]>`select current_user as user`;
    expect(r?.user).not.toBe("secumon_app");
  });

  test("with tenant A set, only A's rows are visible and changeable", async () => {
    await withTenant(sql, A, async (tx) => {
      expect(await agentNames(tx)).toEqual(["a-1", "a-2"]);
      expect((await tx<{ id: string }[]>`select id from tenants`).map((t) => t.id)).toEqual([A]);
      const upd = await tx`update agents set status = 'disabled' where name = 'b-1'`;
      expect(upd.count).toBe(0);
      const del = await tx`delete from agents where tenant_id = ${B}`;
      expect(del.count).toBe(0);
    });
    expect(await withTenant(sql, B, agentNames)).toEqual(["b-1"]);
  });

  test("writing a row for tenant B while set to A is refused, by INSERT and by UPDATE", async () => {
    const insert = await pgError(
      withTenant(sql, A, (tx) => tx`insert into agents (tenant_id, name) values (${B}, 'planted')`),
    );
    expect(insert.code).toBe("42501");
    expect(insert.message).toBe('new row violates row-level security policy for table "agents"');
    const move = await pgError(
      withTenant(sql, A, (tx) => tx`update agents set tenant_id = ${B} where name = 'a-1'`),
    );
    expect(move.code).toBe("42501");
    const [row] = await sql<{ tenant_id: string }[]>`select tenant_id from agents where name = 'b-1'`;
    expect(row?.tenant_id).toBe(B);
    expect(await sql`select 1 from agents where name = 'planted'`).toHaveLength(0);
  });

  test("secumon_admin bypasses RLS; a login holding only secumon_app can neither switch to it nor bypass", async () => {
    expect(await withAdmin(sql, agentNames)).toEqual(["a-1", "a-2", "b-1"]);

    // SET ROLE is checked against the login (session) user, so this is what a split API login would get
    const login = `secumon_test_api_${crypto.randomUUID().replace(/-/g, "").slice(0, 8)}`;
    await sql.unsafe(`create role ${login} login in role secumon_app`);
    try {
      const u = new URL(url);
      u.username = login;
      const asApi = connect(u.toString(), { max: 1, log: silentLogger() });
      pools.push(asApi);
      expect(await withTenant(asApi, A, agentNames)).toEqual(["a-1", "a-2"]);
      expect(await asAppWithoutTenant(asApi, agentNames)).toEqual([]);
      const e = await pgError(withAdmin(asApi, agentNames));
      expect(e.code).toBe("42501");
      expect(e.message).toBe('permission denied to set role "secumon_admin"');
    } finally {
      await sql.unsafe(`drop role ${login}`);
    }
  });

  test("a tenant can neither see superadmins nor create one", async () => {
    await sql`insert into users (email, role) values ('root@platform.example', 'superadmin')`;
    expect(await withTenant(sql, A, (tx) => tx`select email from users`)).toHaveLength(0);
    const inTenant = await pgError(
      withTenant(
        sql,
        A,
        (tx) => tx`insert into users (tenant_id, email, role) values (${A}, 'x@a.example', 'superadmin')`,
      ),
    );
    expect(inTenant.constraint_name).toBe("users_superadmin_has_no_tenant");
    const noTenant = await pgError(
      withTenant(sql, A, (tx) => tx`insert into users (email, role) values ('y@a.example', 'superadmin')`),
    );
    expect(noTenant.code).toBe("42501");
  });

  test("the audit log is append-only and refresh tokens are out of reach for secumon_app", async () => {
    await withTenant(sql, A, async (tx) => {
      await tx`insert into audit_logs (tenant_id, actor, action, resource_type) values (${A}, 'alice@a.example', 'create', 'agent')`;
      expect(await tx`select action from audit_logs`).toHaveLength(1);
    });
    const upd = await pgError(withTenant(sql, A, (tx) => tx`update audit_logs set action = 'nothing'`));
    expect(upd.code).toBe("42501");
    const rt = await pgError(withTenant(sql, A, (tx) => tx`select * from refresh_tokens`));
    expect(rt.code).toBe("42501");
    const sm = await pgError(withTenant(sql, A, (tx) => tx`select * from schema_migrations`));
    expect(sm.code).toBe("42501");
  });

  test("a reference to another tenant's row is refused even when RLS is bypassed (composite foreign keys)", async () => {
    const [t] = await sql<
      { id: string }[]
    >`insert into targets (tenant_id, name, address, type) values (${A}, 'web', 'https://a.example', 'url') returning id`;
    const [p] = await sql<
      { id: string }[]
    >`insert into probes (tenant_id, name) values (${B}, 'b-probe') returning id`;
    const e = await pgError(
      withAdmin(
        sql,
        (tx) =>
          tx`insert into target_probes (tenant_id, target_id, probe_id) values (${A}, ${t!.id}, ${p!.id})`,
      ),
    );
    expect(e.code).toBe("23503");
  });
});

describe("constraints", () => {
  const bad: [string, string, (tx: Tx) => Promise<unknown>][] = [
    [
      "users_role_check",
      "role root",
      (tx) => tx`insert into users (tenant_id, email, role) values (${A}, 'r@a.example', 'root')`,
    ],
    [
      "agents_status_check",
      "agent status",
      (tx) => tx`insert into agents (tenant_id, name, status) values (${A}, 'x', 'asleep')`,
    ],
    [
      "probes_type_check",
      "probe type",
      (tx) => tx`insert into probes (tenant_id, name, type) values (${A}, 'p', 'orbital')`,
    ],
    [
      "probes_status_check",
      "probe status",
      (tx) => tx`insert into probes (tenant_id, name, status) values (${A}, 'p', 'bogus')`,
    ],
    [
      "snmp_credentials_version_check",
      "snmp version",
      (tx) =>
        tx`insert into snmp_credentials (tenant_id, name, version, community_encrypted) values (${A}, 's', 'v4', '\\x00')`,
    ],
    [
      "snmp_credentials_v1_v2c_need_community",
      "v2c without community",
      (tx) => tx`insert into snmp_credentials (tenant_id, name, version) values (${A}, 's', 'v2c')`,
    ],
    [
      "alert_rules_type_check",
      "rule type",
      (tx) =>
        tx`insert into alert_rules (tenant_id, name, severity, type, conditions) values (${A}, 'r', 'warning', 'magic', '{}')`,
    ],
    [
      "alert_rules_severity_check",
      "rule severity",
      (tx) =>
        tx`insert into alert_rules (tenant_id, name, severity, type, conditions) values (${A}, 'r', 'urgent', 'threshold', '{}')`,
    ],
    [
      "notification_channels_type_check",
      "channel type",
      (tx) =>
        tx`insert into notification_channels (tenant_id, name, type, config_encrypted) values (${A}, 'c', 'pager', '\\x00')`,
    ],
    [
      "alert_history_status_check",
      "history status",
      (tx) =>
        tx`insert into alert_history (tenant_id, severity, status, fired_at) values (${A}, 'critical', 'exploded', now())`,
    ],
    [
      "alert_history_severity_check",
      "history severity",
      (tx) =>
        tx`insert into alert_history (tenant_id, severity, status, fired_at) values (${A}, 'meh', 'firing', now())`,
    ],
    [
      "api_keys_role_check",
      "api key superadmin",
      (tx) =>
        tx`insert into api_keys (tenant_id, name, prefix, key_hash, role) values (${A}, 'k', 'smk_', sha256('k'), 'superadmin')`,
    ],
    [
      "enrollment_tokens_uses_in_range",
      "token over-used",
      (tx) =>
        tx`insert into enrollment_tokens (tenant_id, token_hash, expires_at, max_uses, uses) values (${A}, sha256('t'), now(), 1, 2)`,
    ],
  ];
  for (const [constraint, what, insert] of bad) {
    test(`refuses ${what} (${constraint})`, async () => {
      const e = await pgError(withTenant(sql, A, insert));
      expect(e.code).toBe("23514");
      expect(e.constraint_name).toBe(constraint);
    });
  }

  test("tenant_id is required on tenant-owned rows", async () => {
    const e = await pgError(withAdmin(sql, (tx) => tx`insert into agents (name) values ('orphan')`));
    expect(e.code).toBe("23502");
    expect(e.column_name).toBe("tenant_id");
  });

  test("e-mail addresses are unique regardless of case, across tenants", async () => {
    await withTenant(
      sql,
      A,
      (tx) => tx`insert into users (tenant_id, email) values (${A}, 'Bob@Example.com')`,
    );
    const e = await pgError(
      withAdmin(sql, (tx) => tx`insert into users (tenant_id, email) values (${B}, 'bob@example.COM')`),
    );
    expect(e.code).toBe("23505");
    expect(e.constraint_name).toBe("users_email_key");
  });
});

describe("updated_at and ON DELETE", () => {
  test("updated_at moves on a real change and stays on a no-op update", async () => {
    type Times = { created_at: Date; updated_at: Date };
    const [made] = await withTenant(
      sql,
      A,
      (tx) =>
        tx<
          Times[]
        >`insert into agents (tenant_id, name) values (${A}, 'ticking') returning created_at, updated_at`,
    );
    expect(made!.updated_at.getTime()).toBe(made!.created_at.getTime());
    await Bun.sleep(5);
    const [changed] = await withTenant(
      sql,
      A,
      (tx) =>
        tx<
          Times[]
        >`update agents set hostname = 'tick.a.example' where name = 'ticking' returning created_at, updated_at`,
    );
    expect(changed!.updated_at.getTime()).toBeGreaterThan(made!.updated_at.getTime());
    await Bun.sleep(5);
    const [same] = await withTenant(
      sql,
      A,
      (tx) =>
        tx<
          Times[]
        >`update agents set hostname = 'tick.a.example' where name = 'ticking' returning updated_at`,
    );
    expect(same!.updated_at.getTime()).toBe(changed!.updated_at.getTime());
    // an explicit value cannot fake it
    const [forced] = await withTenant(
      sql,
      A,
      (tx) =>
        tx<
          Times[]
        >`update agents set hostname = 'tock', updated_at = '2000-01-01' where name = 'ticking' returning updated_at`,
    );
    expect(forced!.updated_at.getTime()).toBeGreaterThan(changed!.updated_at.getTime());
  });

  test("deleting a rule keeps its history; deleting a tenant removes everything it owns", async () => {
    const T = "cccccccc-0000-4000-8000-00000000000c";
    await sql`insert into tenants (id, name, slug) values (${T}, 'Tenant C', 'tenant-c')`;
    await withTenant(sql, T, async (tx) => {
      const [rule] = await tx<{ id: string }[]>`
        insert into alert_rules (tenant_id, name, severity, type, conditions)
        values (${T}, 'cpu', 'critical', 'threshold', '{"metric": "cpu"}') returning id`;
      const [channel] = await tx<{ id: string }[]>`
        insert into notification_channels (tenant_id, name, type, config_encrypted) values (${T}, 'ops', 'email', '\\x00')
        returning id`;
      await tx`insert into alert_rule_channels (tenant_id, rule_id, channel_id) values (${T}, ${rule!.id}, ${channel!.id})`;
      await tx`insert into alert_history (tenant_id, rule_id, severity, status, fired_at) values (${T}, ${rule!.id}, 'critical', 'firing', now())`;
      await tx`delete from alert_rules where id = ${rule!.id}`;
      const history = await tx<
        { rule_id: string | null; tenant_id: string }[]
      >`select rule_id, tenant_id from alert_history`;
      expect([...history]).toEqual([{ rule_id: null, tenant_id: T }]);
      expect(await tx`select 1 from alert_rule_channels`).toHaveLength(0);
      await tx`insert into agents (tenant_id, name) values (${T}, 'c-1')`;
    });
    await withAdmin(sql, (tx) => tx`delete from tenants where id = ${T}`);
    const left = await sql<{ n: number }[]>`
      select (select count(*) from agents where tenant_id = ${T})::int
           + (select count(*) from alert_history where tenant_id = ${T})::int
           + (select count(*) from notification_channels where tenant_id = ${T})::int as n`;
    expect(left[0]?.n).toBe(0);
  });
});
