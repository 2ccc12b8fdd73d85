/**
 * The wgmanager's SQL: the server row (keys sealed with the keyring), per-tenant pools, and the desired peer set
 * (agents and probes with a key and an address, not revoked). Cross-tenant by nature, so it runs as
 * secumon_admin (withAdmin) except for the server row, which has no tenant.
 */
import type { Sql } from "postgres";
import { CollectorError } from "../lib/errors.ts";
import type { Keyring } from "../security/keyring.ts";
import { type Tx, withAdmin } from "../storage/db.ts";
import { generateKeyPair, publicKeyOf } from "./keys.ts";

export type PeerKind = "agent" | "probe";

export interface DesiredPeer {
  kind: PeerKind;
  id: string;
  tenantId: string;
  name: string;
  /** base64 */
  publicKey: string;
  /** host address, no prefix */
  address: string;
}

export interface ServerSettings {
  interface: string;
  endpoint: string;
  listenPort: number;
  /** with the interface prefix, e.g. 10.200.0.1/16 */
  address: string;
  pool: string;
  allowedIps: string[];
  persistentKeepalive: number;
}

/** The public face of the server row (what the gateway and the API read). */
export interface ServerInfo extends ServerSettings {
  publicKey: string;
  nextPublicKey: string | null;
  rotateAt: Date | null;
  previousPublicKey: string | null;
  rotatedAt: Date | null;
}

export interface ServerKeys {
  info: ServerInfo;
  /** base64 — secret */
  privateKey: string;
}

const sealContext = (publicKey: string) => `wireguard_server.private_key:${publicKey}`;

export class WgStore {
  constructor(
    private readonly sql: Sql,
    private readonly keyring: Keyring,
  ) {}

  /**
   * Creates the server row with a fresh key pair the first time; afterwards updates its settings from the
   * config (the config is authoritative) and returns the stored key. Serialized by an advisory lock, so two
   * instances starting together generate one key.
   */
  async ensureServer(s: ServerSettings): Promise<ServerKeys> {
    const row = await this.sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext('secumon_wireguard_server'))`;
      const [existing] = await tx<{ public_key: string }[]>`select public_key from wireguard_server`;
      if (!existing) {
        const kp = generateKeyPair();
        await tx`
          insert into wireguard_server (interface, public_key, private_key_sealed, endpoint, listen_port, address,
                                        pool, allowed_ips, persistent_keepalive)
          values (${s.interface}, ${kp.publicKey}, ${this.keyring.seal(kp.privateKey, sealContext(kp.publicKey))},
                  ${s.endpoint}, ${s.listenPort}, ${s.address}, ${s.pool}, ${s.allowedIps}::cidr[],
                  ${s.persistentKeepalive})`;
      } else {
        await tx`
          update wireguard_server set interface = ${s.interface}, endpoint = ${s.endpoint},
                 listen_port = ${s.listenPort}, address = ${s.address}, pool = ${s.pool},
                 allowed_ips = ${s.allowedIps}::cidr[], persistent_keepalive = ${s.persistentKeepalive},
                 updated_at = now()
          where (interface, endpoint, listen_port, address, pool, allowed_ips, persistent_keepalive)
                is distinct from (${s.interface}, ${s.endpoint}, ${s.listenPort}, ${s.address}::inet,
                                  ${s.pool}::cidr, ${s.allowedIps}::cidr[], ${s.persistentKeepalive})`;
      }
      const [r] = await tx<ServerRow[]>`select * from wireguard_server`;
      return r as ServerRow;
    });
    return this.keysOf(row);
  }

  async server(): Promise<ServerInfo | null> {
    const [r] = await this.sql<ServerRow[]>`select * from wireguard_server`;
    return r ? infoOf(r) : null;
  }

  /**
   * Starts a rotation: a new key pair, announced now (next_public_key) and used from now + grace on.
   * Refused while one is pending (CONFLICT), so a double click does not push the switch back.
   */
  async beginRotation(graceMs: number): Promise<ServerInfo> {
    const kp = generateKeyPair();
    const rows = await this.sql<ServerRow[]>`
      update wireguard_server
         set next_public_key = ${kp.publicKey},
             next_private_key_sealed = ${this.keyring.seal(kp.privateKey, sealContext(kp.publicKey))},
             rotate_at = now() + ${graceMs} * interval '1 millisecond', updated_at = now()
       where next_public_key is null
      returning *`;
    const [row] = rows;
    if (row) return infoOf(row);
    const current = await this.server();
    if (!current) {
      throw new CollectorError(
        "CONFLICT",
        "WireGuard has not been set up yet: enable it (wireguard.enabled) and start the wgmanager role first",
      );
    }
    throw new CollectorError(
      "CONFLICT",
      `a key rotation is already pending (the new key takes over at ${current.rotateAt?.toISOString()}); ` +
        "wait for it to complete before rotating again",
    );
  }

  /**
   * Completes a pending rotation whose time has come: next → current, current → previous. Returns the new
   * keys, or null when nothing was due (or another instance completed it first).
   */
  async completeRotation(now: Date): Promise<ServerKeys | null> {
    const rows = await this.sql<ServerRow[]>`
      update wireguard_server
         set previous_public_key = public_key, rotated_at = now(),
             public_key = next_public_key, private_key_sealed = next_private_key_sealed,
             next_public_key = null, next_private_key_sealed = null, rotate_at = null, updated_at = now()
       where rotate_at is not null and rotate_at <= ${now}
      returning *`;
    const [row] = rows;
    return row ? this.keysOf(row) : null;
  }

  /** Makes wireguard_pools match the config's `slug=network` list; returns the entries naming no tenant. */
  async syncPools(entries: string[]): Promise<string[]> {
    const wanted = entries.map((e) => {
      const [slug = "", pool = ""] = e.split("=");
      return { slug, pool };
    });
    return withAdmin(this.sql, async (tx) => {
      const slugs = wanted.map((w) => w.slug);
      const tenants = await tx<{ id: string; slug: string }[]>`
        select id, slug from tenants where slug = any(${slugs}::text[])`;
      const bySlug = new Map(tenants.map((t) => [t.slug, t.id]));
      const known = wanted.filter((w) => bySlug.has(w.slug));
      const ids = known.map((w) => bySlug.get(w.slug) as string);
      await tx`delete from wireguard_pools where tenant_id <> all(${ids}::uuid[])`;
      // two statements so that moving a pool from one tenant to another does not trip the overlap constraint
      for (const w of known) {
        await tx`
          insert into wireguard_pools (tenant_id, pool) values (${bySlug.get(w.slug) as string}, ${w.pool})
          on conflict (tenant_id) do update set pool = excluded.pool`;
      }
      return wanted.filter((w) => !bySlug.has(w.slug)).map((w) => w.slug);
    });
  }

  async pools(): Promise<string[]> {
    const rows = await withAdmin(
      this.sql,
      (tx) => tx<{ pool: string }[]>`select pool::text from wireguard_pools`,
    );
    return rows.map((r) => r.pool);
  }

  /** Every peer the interface should have. */
  async desiredPeers(): Promise<DesiredPeer[]> {
    return withAdmin(this.sql, (tx) => tx<DesiredPeer[]>`${peersFrom(tx)} where status <> 'revoked'`);
  }

  /** The desired state of some principals ('revoked' or deleted ones are simply absent). */
  async desiredPeersFor(keys: { kind: PeerKind; id: string }[]): Promise<DesiredPeer[]> {
    const agents = keys.filter((k) => k.kind === "agent").map((k) => k.id);
    const probes = keys.filter((k) => k.kind === "probe").map((k) => k.id);
    return withAdmin(
      this.sql,
      (tx) => tx<DesiredPeer[]>`
        ${peersFrom(tx)}
        where status <> 'revoked'
          and ((kind = 'agent' and id = any(${agents}::uuid[])) or (kind = 'probe' and id = any(${probes}::uuid[])))`,
    );
  }

  /** One principal, revoked or not (for the peer-config export). */
  async principal(kind: PeerKind, id: string): Promise<(DesiredPeer & { status: string }) | null> {
    const rows = await withAdmin(
      this.sql,
      (tx) => tx<(DesiredPeer & { status: string })[]>`
        ${peersFrom(tx)} where kind = ${kind} and id = ${id}::uuid`,
    );
    return rows[0] ?? null;
  }

  private keysOf(row: ServerRow): ServerKeys {
    const privateKey = this.keyring.openText(row.private_key_sealed, sealContext(row.public_key));
    if (publicKeyOf(privateKey) !== row.public_key) {
      throw new CollectorError(
        "INTERNAL",
        "the stored WireGuard private key does not match the stored public key; restore wireguard_server from a backup",
      );
    }
    return { info: infoOf(row), privateKey };
  }
}

/** agents and probes with a tunnel, as one relation (a fragment: `select … from (…) p`). */
const peersFrom = (tx: Tx) => tx`
  select kind, id, tenant_id as "tenantId", name, public_key as "publicKey", host(address) as address, status
  from (
    select 'agent' as kind, id, tenant_id, name, wireguard_public_key as public_key, wireguard_ip as address, status
      from agents where wireguard_public_key is not null and wireguard_ip is not null
    union all
    select 'probe', id, tenant_id, name, wireguard_public_key, wireguard_ip, status
      from probes where wireguard_public_key is not null and wireguard_ip is not null
  ) p`;

interface ServerRow {
  interface: string;
  public_key: string;
  private_key_sealed: Uint8Array;
  next_public_key: string | null;
  rotate_at: Date | null;
  previous_public_key: string | null;
  rotated_at: Date | null;
  endpoint: string;
  listen_port: number;
  address: string;
  pool: string;
  allowed_ips: string[] | string;
  persistent_keepalive: number;
}

function infoOf(r: ServerRow): ServerInfo {
  return {
    interface: r.interface,
    publicKey: r.public_key,
    nextPublicKey: r.next_public_key,
    rotateAt: r.rotate_at,
    previousPublicKey: r.previous_public_key,
    rotatedAt: r.rotated_at,
    endpoint: r.endpoint,
    listenPort: r.listen_port,
    address: r.address,
    pool: r.pool,
    allowedIps: parseArray(r.allowed_ips),
    persistentKeepalive: r.persistent_keepalive,
  };
}

/** postgres.js returns arrays of types it does not know (cidr[]) as the text literal `{a,b}`. */
function parseArray(v: string[] | string): string[] {
  if (Array.isArray(v)) return v;
  const inner = v.replace(/^\{|\}$/g, "");
  return inner ? inner.split(",") : [];
}
