/**
 * How a client certificate names its holder. The subject carries CN=<principal id>, O=<tenant id>,
 * OU=<kind> for humans; the authoritative identity is the SAN URI `urn:secumon:<kind>:<tenant_id>:<id>`,
 * which only the collector CA writes.
 */
export type PrincipalKind = "agent" | "probe" | "collector";

export interface Principal {
  kind: PrincipalKind;
  tenantId: string;
  id: string;
}

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const URN = new RegExp(`^urn:secumon:(agent|probe|collector):(${UUID}):(${UUID})$`);

export function principalUri(p: Principal): string {
  return `urn:secumon:${p.kind}:${p.tenantId}:${p.id}`;
}

export function parsePrincipalUri(uri: string): Principal | null {
  const m = URN.exec(uri);
  return m ? { kind: m[1] as PrincipalKind, tenantId: m[2]!, id: m[3]! } : null;
}

/** From Node's `subjectaltname` string ("URI:urn:secumon:…, DNS:…"): the one secumon principal, or null. */
export function principalFromSubjectAltName(san: string | undefined): Principal | null {
  if (!san) return null;
  const found = san
    .split(/,\s*/)
    .filter((e) => e.startsWith("URI:"))
    .map((e) => parsePrincipalUri(e.slice(4)))
    .filter((p): p is Principal => p !== null);
  return found.length === 1 ? found[0]! : null;
}
