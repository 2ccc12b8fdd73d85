/** Tenants, agents, probes and targets for ingestion tests, inserted as the schema owner. */
import type { Sql } from "postgres";

export interface Fixture {
  tenant: string;
  agent: string;
  probe: string;
  target: string;
  otherTenant: string;
  otherTarget: string;
}

export async function seed(sql: Sql): Promise<Fixture> {
  const f: Fixture = {
    tenant: crypto.randomUUID(),
    agent: crypto.randomUUID(),
    probe: crypto.randomUUID(),
    target: crypto.randomUUID(),
    otherTenant: crypto.randomUUID(),
    otherTarget: crypto.randomUUID(),
  };
  const slug = (id: string) => `t-${id.slice(0, 8)}`;
  await sql`insert into tenants (id, name, slug) values (${f.tenant}, 'T', ${slug(f.tenant)}), (${f.otherTenant}, 'O', ${slug(f.otherTenant)})`;
  await sql`insert into agents (id, tenant_id, name) values (${f.agent}, ${f.tenant}, 'host-1')`;
  await sql`insert into probes (id, tenant_id, name) values (${f.probe}, ${f.tenant}, 'probe-1')`;
  await sql`insert into targets (id, tenant_id, name, address, type) values
    (${f.target}, ${f.tenant}, 'web', 'https://example.test', 'http'),
    (${f.otherTarget}, ${f.otherTenant}, 'other', '10.0.0.1', 'host')`;
  return f;
}
