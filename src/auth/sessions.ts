/**
 * Sessions: a short JWT access token plus a rotating refresh token. Every refresh token issued from one sign-in
 * shares a family (= the session id `sid` in access tokens). Exchanging a token marks it rotated and issues its
 * successor; presenting an already-rotated token means it was stolen (or replayed): the whole family is revoked,
 * so both the thief and the user must sign in again. Runs as secumon_admin (refresh_tokens has no tenant).
 */

import { CollectorError } from "../lib/errors.ts";
import type { Sql, Tx } from "../storage/db.ts";
import { withAdmin } from "../storage/db.ts";
import type { JwtSigner } from "./jwt.ts";
import { randomSecret, sha256 } from "./secrets.ts";

export const REFRESH_PREFIX = "smr_";

export interface SessionUser {
  id: string;
  role: string;
  tenant_id: string | null;
}

export interface SessionTokens {
  token_type: "Bearer";
  access_token: string;
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
}

export interface SessionOptions {
  jwt: JwtSigner;
  accessTtlSeconds: number;
  refreshTtlSeconds: number;
  now: () => number;
}

export async function issueSession(
  tx: Tx,
  o: SessionOptions,
  user: SessionUser,
  client: { ip: string | null; userAgent: string | null },
  familyId: string = crypto.randomUUID(),
): Promise<SessionTokens> {
  const refresh = randomSecret(REFRESH_PREFIX);
  await tx`
    insert into refresh_tokens (user_id, family_id, token_hash, expires_at, ip_address, user_agent)
    values (${user.id}, ${familyId}, ${sha256(refresh)}, ${new Date(o.now() + o.refreshTtlSeconds * 1000)},
            ${client.ip}, ${client.userAgent})`;
  const access = await o.jwt.sign(
    { sub: user.id, kind: "access", sid: familyId, tid: user.tenant_id, role: user.role },
    o.accessTtlSeconds,
  );
  return {
    token_type: "Bearer",
    access_token: access,
    expires_in: o.accessTtlSeconds,
    refresh_token: refresh,
    refresh_expires_in: o.refreshTtlSeconds,
  };
}

const invalidRefresh = () =>
  new CollectorError("UNAUTHENTICATED", "the refresh token is invalid, expired or revoked; sign in again");

export type RotateResult =
  | { ok: true; tokens: SessionTokens; userId: string; tenantId: string | null }
  | { ok: false; reused: boolean; userId?: string; tenantId?: string | null; familyId?: string };

/** Exchanges a refresh token for a new session pair; detects reuse. Never throws for a bad token. */
export async function rotateRefresh(
  sql: Sql,
  o: SessionOptions,
  token: string,
  client: { ip: string | null; userAgent: string | null },
): Promise<RotateResult> {
  if (!token.startsWith(REFRESH_PREFIX) || token.length > 100) return { ok: false, reused: false };
  const now = new Date(o.now());
  return withAdmin(sql, async (tx) => {
    const rows = await tx<
      {
        id: string;
        user_id: string;
        family_id: string;
        expires_at: Date;
        rotated_at: Date | null;
        revoked_at: Date | null;
        role: string;
        tenant_id: string | null;
        disabled: boolean;
      }[]
    >`
      select r.id, r.user_id, r.family_id, r.expires_at, r.rotated_at, r.revoked_at, u.role, u.tenant_id, u.disabled
      from refresh_tokens r join users u on u.id = r.user_id
      where r.token_hash = ${sha256(token)}
      for update of r`;
    const r = rows[0];
    if (!r) return { ok: false, reused: false };
    if (r.rotated_at || r.revoked_at) {
      const hit = await tx`
        update refresh_tokens set revoked_at = ${now} where family_id = ${r.family_id} and revoked_at is null
        returning id`;
      return {
        ok: false,
        reused: r.rotated_at !== null && hit.length > 0,
        userId: r.user_id,
        tenantId: r.tenant_id,
        familyId: r.family_id,
      };
    }
    if (r.expires_at.getTime() <= now.getTime() || r.disabled) return { ok: false, reused: false };
    await tx`update refresh_tokens set rotated_at = ${now} where id = ${r.id}`;
    const tokens = await issueSession(
      tx,
      o,
      { id: r.user_id, role: r.role, tenant_id: r.tenant_id },
      client,
      r.family_id,
    );
    return { ok: true, tokens, userId: r.user_id, tenantId: r.tenant_id };
  });
}

export { invalidRefresh };

/** Revokes every refresh token of a session (sign-out) or of a user (password change, disabled account). */
export async function revokeFamily(tx: Tx, familyId: string, now: Date): Promise<void> {
  await tx`update refresh_tokens set revoked_at = ${now} where family_id = ${familyId} and revoked_at is null`;
}

export async function revokeUserSessions(tx: Tx, userId: string, now: Date): Promise<string[]> {
  const rows = await tx<{ family_id: string }[]>`
    update refresh_tokens set revoked_at = ${now} where user_id = ${userId} and revoked_at is null
    returning family_id`;
  return [...new Set(rows.map((r) => r.family_id))];
}
