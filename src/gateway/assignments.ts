/** GetAssignments: the enabled targets assigned to a probe (target_probes), with a version to poll cheaply. */
import { createHash } from "node:crypto";
import type { Sql } from "postgres";
import type { Principal } from "../pki/identity.ts";
import { withTenant } from "../storage/db.ts";

export interface AssignedTarget {
  id: string;
  name: string;
  address: string;
  type: string;
  tests_json: string;
  tags: string[];
}

export async function probeAssignments(
  sql: Sql,
  p: Principal,
  knownVersion: string,
): Promise<{ version: string; unchanged: boolean; targets: AssignedTarget[] }> {
  const rows = await withTenant(
    sql,
    p.tenantId,
    (tx) => tx<{ id: string; name: string; address: string; type: string; tests: unknown; tags: string[] }[]>`
      select t.id, t.name, t.address, t.type, t.tests, t.tags
        from target_probes tp join targets t on t.tenant_id = tp.tenant_id and t.id = tp.target_id
       where tp.probe_id = ${p.id} and t.enabled
       order by t.id`,
  );
  const targets = rows.map((r) => ({
    id: r.id,
    name: r.name,
    address: r.address,
    type: r.type,
    tests_json: JSON.stringify(r.tests ?? []),
    tags: r.tags,
  }));
  const version = createHash("sha256").update(JSON.stringify(targets)).digest("base64url").slice(0, 22);
  if (version === knownVersion) return { version, unchanged: true, targets: [] };
  return { version, unchanged: false, targets };
}
