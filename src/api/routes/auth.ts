/**
 * /api/v1/auth: sign-in with e-mail and password (argon2id), the MFA step, refresh-token rotation, sign-out,
 * the caller's profile and password change. Lock-out: `lockout.max_failures` wrong passwords in a row lock the
 * account for `lockout.duration`, doubling with each further lock (max 24 h); `ip_max_failures` failures from
 * one address within `duration` block that address. Both answer 429 with Retry-After.
 */
import { Elysia, t } from "elysia";
import { checkPasswordPolicy, hashPassword, needsRehash, verifyPassword } from "../../auth/passwords.ts";
import { issueSession, revokeFamily, revokeUserSessions, rotateRefresh } from "../../auth/sessions.ts";
import { parseDuration } from "../../config/schema.ts";
import { withAdmin } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { audit } from "../lib/audit.ts";
import { tooMany, unauthenticated } from "../lib/http-errors.ts";
import { reauthLimit } from "../lib/reauth.ts";
import { sessionOptions, stopAccessTokens } from "../lib/session-opts.ts";
import { clientIp } from "../principal.ts";
import { mfaRoutes, needsMfaEnrolment } from "./mfa.ts";

const Email = t.String({ minLength: 3, maxLength: 254, pattern: "^[^@\\s]+@[^@\\s]+$" });

interface LoginUser {
  id: string;
  email: string;
  role: string;
  tenant_id: string | null;
  password_hash: string | null;
  mfa_enabled: boolean;
  disabled: boolean;
  failed_logins: number;
  lockouts: number;
  locked_until: Date | null;
}

const MAX_LOCK_MS = 24 * 3600_000;

export function authRoutes(deps: ApiDeps) {
  const lock = deps.config.api.auth.lockout;
  const lockMs = parseDuration(lock.duration);
  const opts = sessionOptions(deps);
  const reauth = reauthLimit(deps);
  const failures = deps.metrics.counter({
    name: "secumon_api_login_failures_total",
    help: "Failed sign-ins, by reason.",
    labelNames: ["reason"],
  });

  type Srv = Parameters<typeof clientIp>[2];
  const client = (request: Request, server: Srv) => ({
    ip: clientIp(deps, request, server),
    userAgent: request.headers.get("user-agent")?.slice(0, 512) ?? null,
  });

  return new Elysia({ name: "api/auth", prefix: "/api/v1/auth" })
    .use(guardPlugin(deps))
    .post(
      "/login",
      async ({ body, request, server }) => {
        const c = client(request, server);
        const ipKey = `login-fail:ip:${c.ip}`;
        if (await deps.store.has(`login-blocked:ip:${c.ip}`)) {
          failures.inc({ reason: "ip_blocked" });
          throw tooMany("too many failed sign-ins from this address; wait and try again later", lockMs);
        }
        const now = new Date(deps.now());
        const rows = await withAdmin(
          deps.sql,
          (tx) => tx<LoginUser[]>`
            select id, email, role, tenant_id, password_hash, mfa_enabled, disabled, failed_logins, lockouts,
                   locked_until
            from users where lower(email) = lower(${body.email})`,
        );
        const u = rows[0];
        if (u?.locked_until && u.locked_until.getTime() > now.getTime()) {
          failures.inc({ reason: "locked" });
          throw locked(u.locked_until.getTime() - now.getTime());
        }
        const ok = await verifyPassword(body.password, u?.password_hash ?? null);
        if (!u || !ok || u.disabled) {
          failures.inc({ reason: u?.disabled ? "disabled" : "bad_credentials" });
          const hit = await deps.store.hit(ipKey, lockMs);
          if (hit.count >= lock.ip_max_failures)
            await deps.store.flag(`login-blocked:ip:${c.ip}`, hit.resetMs);
          if (u && !u.disabled) await recordFailure(u, now, c);
          throw unauthenticated("wrong e-mail address or password");
        }
        // Guesses sent together all passed the checks above before the first of them failed: a lock or an
        // address block set meanwhile (by the max_failures-th wrong guess) refuses the right one too.
        if (await deps.store.has(`login-blocked:ip:${c.ip}`)) {
          failures.inc({ reason: "ip_blocked" });
          throw tooMany("too many failed sign-ins from this address; wait and try again later", lockMs);
        }
        // a hash made with other argon2 parameters is replaced while the password is at hand
        const rehash =
          u.password_hash && needsRehash(u.password_hash) ? await hashPassword(body.password) : null;
        const signedIn = await withAdmin(
          deps.sql,
          (tx) => tx<{ locked_until: Date | null }[]>`
            update users set failed_logins = 0, lockouts = 0, locked_until = null, last_login = ${now}
                   ${rehash ? tx`, password_hash = ${rehash}` : tx``}
            where id = ${u.id} and (locked_until is null or locked_until <= ${now})
            returning locked_until`,
        );
        if (!signedIn.length) {
          // locked by another guess of the same burst: the lock may be longer than one duration (repeat locks)
          failures.inc({ reason: "locked" });
          const [l] = await withAdmin(
            deps.sql,
            (tx) => tx<{ locked_until: Date | null }[]>`select locked_until from users where id = ${u.id}`,
          );
          const left = (l?.locked_until?.getTime() ?? 0) - now.getTime();
          throw locked(left > 0 ? left : lockMs);
        }
        if (u.mfa_enabled && deps.config.api.auth.mfa.enabled) {
          const mfa_token = await deps.jwt.sign(
            { sub: u.id, kind: "mfa", sid: "", tid: u.tenant_id, role: u.role },
            300,
          );
          return { mfa_required: true as const, mfa_token };
        }
        return completeLogin(u, c, "password");
      },
      {
        body: t.Object(
          { email: Email, password: t.String({ minLength: 1, maxLength: 256 }) },
          { additionalProperties: false },
        ),
        detail: { summary: "Sign in with e-mail and password", tags: ["auth"] },
      },
    )
    .post(
      "/refresh",
      async ({ body, request, server }) => {
        const c = client(request, server);
        const r = await rotateRefresh(deps.sql, opts, body.refresh_token, c);
        if (r.ok) return r.tokens;
        if (r.reused && r.familyId) {
          await stopAccessTokens(deps, [r.familyId]);
          deps.log.warn({ userId: r.userId, ip: c.ip }, "refresh token reused: session revoked");
          await withAdmin(deps.sql, (tx) =>
            audit(
              tx,
              {
                principal: { userId: r.userId ?? null, actor: `user:${r.userId}` } as never,
                tenantId: r.tenantId ?? null,
                ...c,
              },
              { action: "auth.refresh_reuse", resourceType: "session", resourceId: r.familyId ?? null },
            ),
          );
        }
        throw unauthenticated("the refresh token is invalid, expired or revoked; sign in again");
      },
      {
        body: t.Object(
          { refresh_token: t.String({ minLength: 1, maxLength: 200 }) },
          { additionalProperties: false },
        ),
        detail: { summary: "Exchange a refresh token for a new token pair (rotation)", tags: ["auth"] },
      },
    )
    .post(
      "/logout",
      async ({ req }) => {
        const now = new Date(deps.now());
        if (req.principal.sid) {
          await withAdmin(deps.sql, async (tx) => {
            await revokeFamily(tx, req.principal.sid, now);
            await audit(
              tx,
              { ...req, tenantId: req.principal.homeTenant },
              { action: "auth.logout", resourceType: "session", resourceId: req.principal.sid },
            );
          });
          await stopAccessTokens(deps, [req.principal.sid]);
        }
        return { status: "signed_out" };
      },
      {
        auth: { role: "viewer", tenant: false, restricted: true },
        detail: { summary: "Sign out", tags: ["auth"] },
      },
    )
    .get(
      "/me",
      async ({ req }) => {
        if (!req.principal.userId) {
          return { kind: "apikey", role: req.principal.role, tenant_id: req.principal.homeTenant };
        }
        const rows = await withAdmin(
          deps.sql,
          (
            tx,
          ) => tx`select id, email, name, role, tenant_id, mfa_enabled, sso_provider, last_login, created_at
                     from users where id = ${req.principal.userId}`,
        );
        return { kind: "user", ...rows[0], mfa_enrollment_required: req.principal.restricted };
      },
      {
        auth: { role: "viewer", tenant: false, restricted: true },
        detail: { summary: "Who am I", tags: ["auth"] },
      },
    )
    .post(
      "/password",
      async ({ body, req }) => {
        if (!req.principal.userId) throw unauthenticated("API keys have no password");
        await reauth.check(req.principal.userId);
        checkPasswordPolicy(body.new_password, "body/new_password");
        const rows = await withAdmin(
          deps.sql,
          (tx) =>
            tx<
              { password_hash: string | null }[]
            >`select password_hash from users where id = ${req.principal.userId}`,
        );
        if (!(await verifyPassword(body.current_password, rows[0]?.password_hash ?? null))) {
          await reauth.fail(req.principal.userId);
          throw unauthenticated("the current password is wrong");
        }
        const hash = await hashPassword(body.new_password);
        const now = new Date(deps.now());
        const families = await withAdmin(deps.sql, async (tx) => {
          await tx`update users set password_hash = ${hash} where id = ${req.principal.userId}`;
          await audit(
            tx,
            { ...req, tenantId: req.principal.homeTenant },
            {
              action: "user.password_changed",
              resourceType: "user",
              resourceId: req.principal.userId,
            },
          );
          return revokeUserSessions(tx, req.principal.userId as string, now);
        });
        await stopAccessTokens(
          deps,
          families.filter((f) => f !== req.principal.sid),
        );
        return {
          status: "password_changed",
          other_sessions_signed_out: families.filter((f) => f !== req.principal.sid).length,
        };
      },
      {
        auth: { role: "viewer", tenant: false },
        body: t.Object(
          { current_password: t.String({ maxLength: 256 }), new_password: t.String({ maxLength: 256 }) },
          { additionalProperties: false },
        ),
        detail: { summary: "Change my password (signs out my other sessions)", tags: ["auth"] },
      },
    )
    .use(mfaRoutes(deps, completeLogin));

  /** 429 for a locked account, saying when it opens again (and in Retry-After). */
  function locked(leftMs: number) {
    return tooMany(
      `this account is locked after repeated failed sign-ins; try again in ${Math.ceil(leftMs / 60000)} minute(s) ` +
        "or ask an administrator to unlock it",
      leftMs,
    );
  }

  /**
   * Counts a wrong password in the row itself (locked, then incremented): wrong guesses sent at once are each
   * counted, where a count read before the password check and written back after it let them overwrite one
   * another (every guess of a burst wrote 1, and the account never locked).
   */
  async function recordFailure(u: LoginUser, now: Date, c: { ip: string; userAgent: string | null }) {
    await withAdmin(deps.sql, async (tx) => {
      const [row] = await tx<{ failed_logins: number; lockouts: number; locked_until: Date | null }[]>`
        select failed_logins, lockouts, locked_until from users where id = ${u.id} for update`;
      if (!row) return;
      // already locked by another guess of the same burst: that lock stands, this guess adds nothing
      if (row.locked_until && row.locked_until.getTime() > now.getTime()) return;
      const n = row.failed_logins + 1;
      if (n >= lock.max_failures) {
        const until = new Date(
          now.getTime() + Math.min(MAX_LOCK_MS, lockMs * 2 ** Math.min(row.lockouts, 20)),
        );
        await tx`update users set failed_logins = 0, lockouts = lockouts + 1, locked_until = ${until} where id = ${u.id}`;
        await audit(
          tx,
          { principal: { userId: u.id, actor: u.email } as never, tenantId: u.tenant_id, ...c },
          { action: "auth.locked", resourceType: "user", resourceId: u.id, new: { locked_until: until } },
        );
      } else {
        await tx`update users set failed_logins = ${n} where id = ${u.id}`;
      }
    });
  }

  async function completeLogin(
    u: { id: string; email: string; role: string; tenant_id: string | null; mfa_enabled: boolean },
    c: { ip: string; userAgent: string | null },
    method: string,
  ) {
    if (!u.mfa_enabled && (await needsMfaEnrolment(deps, u.tenant_id))) {
      const access = await deps.jwt.sign(
        { sub: u.id, kind: "setup", sid: "", tid: u.tenant_id, role: u.role },
        900,
      );
      return { mfa_enrollment_required: true as const, access_token: access, token_type: "Bearer" as const };
    }
    return withAdmin(deps.sql, async (tx) => {
      const tokens = await issueSession(tx, opts, u, c);
      await audit(
        tx,
        { principal: { userId: u.id, actor: u.email } as never, tenantId: u.tenant_id, ...c },
        { action: "auth.login", resourceType: "session", new: { method } },
      );
      return tokens;
    });
  }
}

export type CompleteLogin = (
  u: { id: string; email: string; role: string; tenant_id: string | null; mfa_enabled: boolean },
  c: { ip: string; userAgent: string | null },
  method: string,
) => Promise<unknown>;
