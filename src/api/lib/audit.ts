/** Audit log: every change writes who, what, before/after, client address and user agent. */
import type { Tx } from "../../storage/db.ts";
import type { RequestInfo } from "../guard.ts";

export interface AuditEntry {
  action: string;
  resourceType: string;
  resourceId?: string | null;
  old?: unknown;
  new?: unknown;
}

/** Writes one entry in the caller's transaction (tenant-scoped, or platform-wide with tenantId null). */
export async function audit(
  tx: Tx,
  r: Pick<RequestInfo, "principal" | "ip" | "userAgent"> & { tenantId: string | null },
  e: AuditEntry,
): Promise<void> {
  await tx`
    insert into audit_logs (tenant_id, user_id, actor, action, resource_type, resource_id, old_value, new_value,
                            ip_address, user_agent)
    values (${r.tenantId || null}, ${r.principal.userId}, ${r.principal.actor}, ${e.action}, ${e.resourceType},
            ${e.resourceId ?? null}, ${e.old === undefined ? null : tx.json(e.old as never)},
            ${e.new === undefined ? null : tx.json(e.new as never)}, ${r.ip}, ${r.userAgent})`;
}
