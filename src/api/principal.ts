/**
 * Who is calling: a user (JWT access token) or an API key, resolved from the Authorization header (or
 * X-API-Key), and the tenant the request acts on.
 *
 * Revocation without a database read per request: the verified user row or API key is kept for
 * PRINCIPAL_CACHE_MS (5 s) per process. What must stop at once still does, because it goes through the
 * counter store, which every request consults (shared over Redis when `redis.url` is set):
 *   - sign-out, and an admin disabling a user, changing their role or password, or deleting them: their
 *     sessions are revoked (`session-revoked:<sid>` flags, checked on every request, never cached);
 *   - a revoked API key: `apikey-revoked:<id>` flag, checked on every cache hit.
 * Changes made outside the API (SQL by hand, a deleted tenant's users) take effect within 5 s. The cache
 * saves a transaction per request (4 round trips): docs/api.md has the figures.
 */
import { sha256 } from "../auth/secrets.ts";
import { withAdmin } from "../storage/db.ts";
import type { ApiDeps, Role } from "./deps.ts";
import { badRequest, notFound, unauthenticated } from "./lib/http-errors.ts";

export interface Principal {
  kind: "user" | "apikey";
  /** users.id, or null for an API key. */
  userId: string | null;
  apiKeyId: string | null;
  /** For the audit log: the e-mail address, or `apikey:<name>`. */
  actor: string;
  role: Role;
  /** The user's own tenant (null for superadmins). */
  homeTenant: string | null;
  /** Refresh-token family of the session ("" for API keys). */
  sid: string;
  /** A `setup` token: may only enrol MFA (tenant requires it). */
  restricted: boolean;
}

export const API_KEY_PREFIX = "smk_";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string): boolean => UUID.test(s);

export const revokedSessionKey = (sid: string) => `session-revoked:${sid}`;
export const revokedApiKeyKey = (id: string) => `apikey-revoked:${id}`;

/** How long a verified user row or API key is reused without a database read. */
export const PRINCIPAL_CACHE_MS = 5000;
const CACHE_MAX = 10_000;

interface UserRow {
  id: string;
  email: string;
  role: Role;
  tenant_id: string | null;
  disabled: boolean;
}
interface KeyRow {
  id: string;
  tenant_id: string;
  name: string;
  role: Role;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}
interface Cached<T> {
  row: T | undefined;
  until: number;
}
const caches = new WeakMap<
  ApiDeps,
  { users: Map<string, Cached<UserRow>>; keys: Map<string, Cached<KeyRow>> }
>();
function cacheOf(deps: ApiDeps) {
  let c = caches.get(deps);
  if (!c) {
    c = { users: new Map(), keys: new Map() };
    caches.set(deps, c);
  }
  return c;
}
async function cached<T>(
  map: Map<string, Cached<T>>,
  key: string,
  now: number,
  load: () => Promise<T | undefined>,
): Promise<T | undefined> {
  const hit = map.get(key);
  if (hit && hit.until > now) return hit.row;
  const row = await load();
  if (map.size >= CACHE_MAX) map.clear();
  map.set(key, { row, until: now + PRINCIPAL_CACHE_MS });
  return row;
}

/** Drops this process's cached principals (a tenant was deleted, a user removed): the next request re-reads. */
export function forgetPrincipals(deps: ApiDeps, userId?: string): void {
  const c = caches.get(deps);
  if (!c) return;
  if (userId) c.users.delete(userId);
  else {
    c.users.clear();
    c.keys.clear();
  }
}

function bearer(headers: Headers): string | null {
  const h = headers.get("authorization");
  if (h) {
    const m = /^Bearer\s+(\S+)$/i.exec(h.trim());
    if (!m?.[1]) throw unauthenticated("malformed Authorization header: expected `Bearer <token>`");
    return m[1];
  }
  return headers.get("x-api-key");
}

export async function authenticate(
  deps: ApiDeps,
  headers: Headers,
  allowRestricted: boolean,
): Promise<Principal> {
  const token = bearer(headers);
  if (!token) throw unauthenticated();
  if (token.startsWith(API_KEY_PREFIX)) return apiKeyPrincipal(deps, token);

  const claims = await deps.jwt.verify(token, "access").catch(async (e) => {
    if (!allowRestricted) throw e;
    return deps.jwt.verify(token, "setup").catch(() => {
      throw e;
    });
  });
  if (claims.sid && (await deps.store.has(revokedSessionKey(claims.sid)))) {
    throw unauthenticated("this session was signed out; sign in again");
  }
  const u = await cached(cacheOf(deps).users, claims.sub, deps.now(), async () => {
    const rows = await withAdmin(
      deps.sql,
      (tx) => tx<UserRow[]>`select id, email, role, tenant_id, disabled from users where id = ${claims.sub}`,
    );
    return rows[0];
  });
  if (!u || u.disabled) throw unauthenticated("this account no longer exists or is disabled");
  if ((u.tenant_id ?? null) !== (claims.tid ?? null))
    throw unauthenticated("the account moved; sign in again");
  return {
    kind: "user",
    userId: u.id,
    apiKeyId: null,
    actor: u.email,
    role: u.role,
    homeTenant: u.tenant_id,
    sid: claims.sid,
    restricted: claims.kind === "setup",
  };
}

async function apiKeyPrincipal(deps: ApiDeps, token: string): Promise<Principal> {
  const hash = sha256(token);
  const now = new Date(deps.now());
  const c = cacheOf(deps).keys;
  const id = hash.toString("hex");
  const fresh = c.get(id);
  if (
    fresh &&
    fresh.until > now.getTime() &&
    fresh.row &&
    (await deps.store.has(revokedApiKeyKey(fresh.row.id)))
  ) {
    c.delete(id);
  }
  const k = await cached(c, id, now.getTime(), () =>
    withAdmin(deps.sql, async (tx) => {
      const rows = await tx<KeyRow[]>`
      select id, tenant_id, name, role, expires_at, revoked_at, last_used_at from api_keys where key_hash = ${hash}`;
      const key = rows[0];
      if (
        key &&
        !key.revoked_at &&
        (!key.last_used_at || now.getTime() - key.last_used_at.getTime() > 60_000)
      ) {
        await tx`update api_keys set last_used_at = ${now} where id = ${key.id}`;
      }
      return key;
    }),
  );
  if (!k || k.revoked_at) throw unauthenticated("this API key is unknown or was revoked; create a new one");
  if (k.expires_at && k.expires_at.getTime() <= now.getTime()) {
    throw unauthenticated("this API key has expired; create a new one");
  }
  return {
    kind: "apikey",
    userId: null,
    apiKeyId: k.id,
    actor: `apikey:${k.name}`,
    role: k.role,
    homeTenant: k.tenant_id,
    sid: "",
    restricted: false,
  };
}

/**
 * The tenant a request acts on. Tenant users and API keys: their own (an X-Tenant-ID naming another tenant
 * answers 404, as if it did not exist). Superadmins: the tenant named by X-Tenant-ID, which must exist.
 */
export async function resolveTenant(deps: ApiDeps, p: Principal, header: string | null): Promise<string> {
  const wanted = header?.trim() || null;
  if (wanted !== null && !isUuid(wanted)) throw badRequest("X-Tenant-ID must be a tenant id (a UUID)");
  if (p.role !== "superadmin") {
    if (!p.homeTenant) throw unauthenticated();
    if (wanted !== null && wanted.toLowerCase() !== p.homeTenant) throw notFound("tenant");
    return p.homeTenant;
  }
  if (wanted === null) {
    throw badRequest("superadmins act on one tenant at a time: name it with the X-Tenant-ID header");
  }
  const rows = await withAdmin(deps.sql, (tx) => tx`select 1 from tenants where id = ${wanted}`);
  if (!rows.length) throw notFound("tenant");
  return wanted.toLowerCase();
}

export function clientIp(
  deps: ApiDeps,
  request: Request,
  server: { requestIP(r: Request): { address: string } | null } | null,
): string {
  if (deps.config.api.trust_proxy) {
    // the last address is the one the trusted proxy added (or the only one, if it replaces the header); the
    // ones before it are whatever the client sent, and taking the first let a client choose its address (a
    // fresh one per guess got around the per-address sign-in block and the rate limit)
    const xff = request.headers.get("x-forwarded-for")?.split(",").at(-1)?.trim();
    if (xff && /^[0-9a-f.:]{2,45}$/i.test(xff)) return xff;
  }
  return server?.requestIP(request)?.address ?? "127.0.0.1";
}
