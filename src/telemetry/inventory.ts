/**
 * Inventory snapshots: replace an agent's current state (inventory_hosts/_packages/_services/_ports) with the
 * snapshot and record what changed since the previous one in inventory_changes. A snapshot older than the
 * stored one (a late redelivery) changes nothing. Runs inside the writer's transaction, under an advisory
 * lock per agent so two snapshots of one agent are compared one after the other.
 */
import type { InventoryPayload } from "../protocol/index.ts";
import type { Tx } from "../storage/db.ts";

export interface Change {
  item_type: "package" | "service" | "port" | "os";
  item: string;
  change: "installed" | "removed" | "upgraded" | "downgraded" | "changed" | "added";
  old_value: string | null;
  new_value: string | null;
}

interface Pkg {
  manager: string;
  name: string;
  arch: string;
  version: string;
}
interface Svc {
  name: string;
  state: string;
  enabled: boolean;
}
interface Port {
  protocol: string;
  address: string;
  port: number;
  process: string;
  pid: number | null;
}

const pkgKey = (p: { manager: string; name: string; arch: string }) => `${p.manager}:${p.name}:${p.arch}`;
const portKey = (p: { protocol: string; address: string; port: number }) =>
  `${p.protocol}/${p.address}:${p.port}`;

/** Compares dotted/dashed version strings numerically where both parts are numbers (good enough for a hint). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.\-+:~]/);
  const pb = b.split(/[.\-+:~]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? "";
    const y = pb[i] ?? "";
    if (x === y) continue;
    const nx = Number(x);
    const ny = Number(y);
    if (x !== "" && y !== "" && Number.isFinite(nx) && Number.isFinite(ny)) return nx < ny ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

export function diffInventory(
  before: { packages: Pkg[]; services: Svc[]; ports: Port[]; os: Record<string, string | null> },
  after: { packages: Pkg[]; services: Svc[]; ports: Port[]; os: Record<string, string | null> },
): Change[] {
  const changes: Change[] = [];
  const oldPkgs = new Map(before.packages.map((p) => [pkgKey(p), p]));
  const newPkgs = new Map(after.packages.map((p) => [pkgKey(p), p]));
  for (const [k, p] of newPkgs) {
    const o = oldPkgs.get(k);
    if (!o)
      changes.push({
        item_type: "package",
        item: k,
        change: "installed",
        old_value: null,
        new_value: p.version,
      });
    else if (o.version !== p.version)
      changes.push({
        item_type: "package",
        item: k,
        change: compareVersions(o.version, p.version) < 0 ? "upgraded" : "downgraded",
        old_value: o.version,
        new_value: p.version,
      });
  }
  for (const [k, o] of oldPkgs)
    if (!newPkgs.has(k))
      changes.push({
        item_type: "package",
        item: k,
        change: "removed",
        old_value: o.version,
        new_value: null,
      });
  const svcDesc = (s: Svc) => `${s.state}${s.enabled ? ",enabled" : ",disabled"}`;
  const oldSvcs = new Map(before.services.map((s) => [s.name, s]));
  const newSvcs = new Map(after.services.map((s) => [s.name, s]));
  for (const [k, s] of newSvcs) {
    const o = oldSvcs.get(k);
    if (!o)
      changes.push({
        item_type: "service",
        item: k,
        change: "added",
        old_value: null,
        new_value: svcDesc(s),
      });
    else if (svcDesc(o) !== svcDesc(s))
      changes.push({
        item_type: "service",
        item: k,
        change: "changed",
        old_value: svcDesc(o),
        new_value: svcDesc(s),
      });
  }
  for (const [k, o] of oldSvcs)
    if (!newSvcs.has(k))
      changes.push({
        item_type: "service",
        item: k,
        change: "removed",
        old_value: svcDesc(o),
        new_value: null,
      });
  const oldPorts = new Map(before.ports.map((p) => [portKey(p), p]));
  const newPorts = new Map(after.ports.map((p) => [portKey(p), p]));
  for (const [k, p] of newPorts)
    if (!oldPorts.has(k))
      changes.push({
        item_type: "port",
        item: k,
        change: "added",
        old_value: null,
        new_value: p.process || null,
      });
  for (const [k, o] of oldPorts)
    if (!newPorts.has(k))
      changes.push({
        item_type: "port",
        item: k,
        change: "removed",
        old_value: o.process || null,
        new_value: null,
      });
  for (const k of Object.keys(after.os)) {
    const o = before.os[k] ?? null;
    const n = after.os[k] ?? null;
    if (o !== n) changes.push({ item_type: "os", item: k, change: "changed", old_value: o, new_value: n });
  }
  return changes;
}

/** Normalises a decoded snapshot (defaults, deduplicated keys). */
export function snapshotOf(p: InventoryPayload) {
  const packages = new Map<string, Pkg>();
  for (const x of p.packages ?? []) {
    if (!x.name) continue;
    const pkg = { manager: x.manager ?? "", name: x.name, arch: x.arch ?? "", version: x.version ?? "" };
    packages.set(pkgKey(pkg), pkg);
  }
  const services = new Map<string, Svc>();
  for (const s of p.services ?? []) {
    if (s.name) services.set(s.name, { name: s.name, state: s.state ?? "", enabled: s.enabled === true });
  }
  const ports = new Map<string, Port>();
  for (const x of p.ports ?? []) {
    const port = {
      protocol: x.protocol ?? "",
      address: x.address ?? "",
      port: x.port ?? 0,
      process: x.process ?? "",
      pid: x.pid ? x.pid : null,
    };
    if (port.port >= 0 && port.port <= 65535) ports.set(portKey(port), port);
  }
  const os = p.os ?? null;
  return {
    packages: [...packages.values()],
    services: [...services.values()],
    ports: [...ports.values()],
    os: {
      hostname: os?.hostname || null,
      name: os?.name || null,
      version: os?.version || null,
      kernel: os?.kernel || null,
      arch: os?.arch || null,
    } as Record<string, string | null>,
    bootTimeMs: os?.boot_time_unix_ms ? Number(os.boot_time_unix_ms) : null,
  };
}

/** Applies one snapshot for one agent; returns the number of changes recorded (-1 when it was stale). */
export async function applyInventory(
  tx: Tx,
  tenantId: string,
  agentId: string,
  timeMs: number,
  payload: InventoryPayload,
): Promise<number> {
  await tx`select pg_advisory_xact_lock(hashtextextended(${`inventory:${agentId}`}, 0))`;
  const snap = snapshotOf(payload);
  const at = new Date(timeMs);
  const [host] = await tx<
    {
      collected_at: Date;
      hostname: string | null;
      os_name: string | null;
      os_version: string | null;
      kernel: string | null;
      arch: string | null;
    }[]
  >`select collected_at, hostname, os_name, os_version, kernel, arch from inventory_hosts where agent_id = ${agentId}`;
  if (host && host.collected_at.getTime() >= timeMs) return -1;

  let changes: Change[] = [];
  if (host) {
    const [packages, services, ports] = await Promise.all([
      tx<Pkg[]>`select manager, name, arch, version from inventory_packages where agent_id = ${agentId}`,
      tx<Svc[]>`select name, state, enabled from inventory_services where agent_id = ${agentId}`,
      tx<
        Port[]
      >`select protocol, address, port, process, pid from inventory_ports where agent_id = ${agentId}`,
    ]);
    changes = diffInventory(
      {
        packages,
        services,
        ports,
        os: {
          hostname: host.hostname,
          name: host.os_name,
          version: host.os_version,
          kernel: host.kernel,
          arch: host.arch,
        },
      },
      snap,
    );
  }
  const os = snap.os;
  await tx`
    insert into inventory_hosts (tenant_id, agent_id, collected_at, hostname, os_name, os_version, kernel, arch,
                                 boot_time, packages, services, ports)
    values (${tenantId}, ${agentId}, ${at}, ${os.hostname ?? null}, ${os.name ?? null}, ${os.version ?? null},
            ${os.kernel ?? null}, ${os.arch ?? null}, ${snap.bootTimeMs ? new Date(snap.bootTimeMs) : null},
            ${snap.packages.length}, ${snap.services.length}, ${snap.ports.length})
    on conflict (agent_id) do update set collected_at = excluded.collected_at, hostname = excluded.hostname,
      os_name = excluded.os_name, os_version = excluded.os_version, kernel = excluded.kernel, arch = excluded.arch,
      boot_time = excluded.boot_time, packages = excluded.packages, services = excluded.services,
      ports = excluded.ports`;
  // Packages keep first_seen across snapshots while their version is unchanged.
  await tx`
    delete from inventory_packages p where p.agent_id = ${agentId} and not exists (
      select 1 from unnest(${snap.packages.map((p) => p.manager)}::text[], ${snap.packages.map((p) => p.name)}::text[],
                           ${snap.packages.map((p) => p.arch)}::text[], ${snap.packages.map((p) => p.version)}::text[])
        as n (manager, name, arch, version)
      where n.manager = p.manager and n.name = p.name and n.arch = p.arch and n.version = p.version)`;
  await tx`
    insert into inventory_packages (tenant_id, agent_id, manager, name, arch, version, first_seen)
    select ${tenantId}, ${agentId}, n.manager, n.name, n.arch, n.version, ${at}
    from unnest(${snap.packages.map((p) => p.manager)}::text[], ${snap.packages.map((p) => p.name)}::text[],
                ${snap.packages.map((p) => p.arch)}::text[], ${snap.packages.map((p) => p.version)}::text[])
      as n (manager, name, arch, version)
    on conflict (agent_id, manager, name, arch) do nothing`;
  await tx`delete from inventory_services where agent_id = ${agentId}`;
  await tx`
    insert into inventory_services (tenant_id, agent_id, name, state, enabled)
    select ${tenantId}, ${agentId}, n.name, n.state, n.enabled::boolean
    from unnest(${snap.services.map((s) => s.name)}::text[], ${snap.services.map((s) => s.state)}::text[],
                ${snap.services.map((s) => String(s.enabled))}::text[]) as n (name, state, enabled)`;
  await tx`delete from inventory_ports where agent_id = ${agentId}`;
  await tx`
    insert into inventory_ports (tenant_id, agent_id, protocol, address, port, process, pid)
    select ${tenantId}, ${agentId}, n.protocol, n.address, n.port::int, n.process, n.pid::int
    from unnest(${snap.ports.map((p) => p.protocol)}::text[], ${snap.ports.map((p) => p.address)}::text[],
                ${snap.ports.map((p) => String(p.port))}::text[], ${snap.ports.map((p) => p.process)}::text[],
                ${snap.ports.map((p) => (p.pid === null ? null : String(p.pid)))}::text[]) as n (protocol, address, port, process, pid)`;
  if (changes.length > 0) {
    await tx`
      insert into inventory_changes (time, tenant_id, agent_id, item_type, item, change, old_value, new_value)
      select ${at}, ${tenantId}, ${agentId}, c.item_type, c.item, c.change, c.old_value, c.new_value
      from unnest(${changes.map((c) => c.item_type)}::text[], ${changes.map((c) => c.item)}::text[],
                  ${changes.map((c) => c.change)}::text[], ${changes.map((c) => c.old_value)}::text[],
                  ${changes.map((c) => c.new_value)}::text[]) as c (item_type, item, change, old_value, new_value)`;
  }
  return changes.length;
}
