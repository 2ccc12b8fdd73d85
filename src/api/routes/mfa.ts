/**
 * TOTP multi-factor authentication: enrol (secret + otpauth URI for the QR code), activate with a first code
 * (returns 10 one-time recovery codes, shown once), the sign-in step (code or recovery code, 5 tries per
 * challenge), and disabling (password + code). The secret is sealed with the keyring, bound to the user's id.
 * A code is accepted once: its time step is recorded, and the same or an earlier step is refused (replay).
 */
import { Elysia, t } from "elysia";
import { renderSVG } from "uqr";
import { verifyPassword } from "../../auth/passwords.ts";
import { normalizeRecoveryCode, recoveryCode, sha256 } from "../../auth/secrets.ts";
import { checkTotp, newTotpSecret, totpUri } from "../../auth/totp.ts";
import { CollectorError } from "../../lib/errors.ts";
import { type Tx, withAdmin } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { audit } from "../lib/audit.ts";
import { conflict, tooMany, unauthenticated } from "../lib/http-errors.ts";
import { reauthLimit } from "../lib/reauth.ts";
import { clientIp } from "../principal.ts";
import type { CompleteLogin } from "./auth.ts";

const Code = t.String({ pattern: "^\\d{6}$", description: "6-digit code from the authenticator app" });
const secretContext = (userId: string) => `users.totp_secret:${userId}`;

/** Whether the tenant's settings require MFA of its users (`settings.mfa_required`). */
async function tenantRequiresMfa(tx: Tx, tenantId: string | null): Promise<boolean> {
  if (!tenantId) return false;
  const [row] = await tx<
    { r: boolean | null }[]
  >`select (settings->>'mfa_required')::boolean as r from tenants where id = ${tenantId}`;
  return row?.r === true;
}

export async function needsMfaEnrolment(deps: ApiDeps, tenantId: string | null): Promise<boolean> {
  if (!deps.config.api.auth.mfa.enabled || !tenantId) return false;
  return withAdmin(deps.sql, (tx) => tenantRequiresMfa(tx, tenantId));
}

interface MfaUser {
  id: string;
  email: string;
  role: string;
  tenant_id: string | null;
  mfa_enabled: boolean;
  totp_secret_encrypted: Uint8Array | null;
  totp_last_step: string | null;
  password_hash: string | null;
}

export function mfaRoutes(deps: ApiDeps, completeLogin: CompleteLogin) {
  const mfa = deps.config.api.auth.mfa;
  const reauth = reauthLimit(deps);
  const disabledError = () =>
    new CollectorError("FORBIDDEN", "multi-factor authentication is turned off (api.auth.mfa.enabled)");

  const loadUser = (tx: Tx, id: string) =>
    tx<MfaUser[]>`select id, email, role, tenant_id, mfa_enabled, totp_secret_encrypted, totp_last_step::text,
                         password_hash
                  from users where id = ${id} and not disabled for update`.then((r) => r[0]);

  /** Checks a TOTP code and records its step atomically (row locked); false for wrong or replayed codes. */
  async function acceptCode(tx: Tx, u: MfaUser, code: string): Promise<boolean> {
    if (!u.totp_secret_encrypted) return false;
    const secret = deps.keyring.openText(u.totp_secret_encrypted, secretContext(u.id));
    const last = u.totp_last_step === null ? null : Number(u.totp_last_step);
    const step = await checkTotp(secret, code, last, deps.now());
    if (step === null) return false;
    await tx`update users set totp_last_step = ${step} where id = ${u.id}`;
    return true;
  }

  async function useRecoveryCode(tx: Tx, userId: string, code: string): Promise<boolean> {
    const rows = await tx`
      update user_recovery_codes set used_at = ${new Date(deps.now())}
      where user_id = ${userId} and code_hash = ${sha256(normalizeRecoveryCode(code))} and used_at is null
      returning id`;
    return rows.length === 1;
  }

  return new Elysia({ name: "api/auth/mfa" })
    .use(guardPlugin(deps))
    .post(
      "/mfa/verify",
      async ({ body, request, server }) => {
        if (!mfa.enabled) throw disabledError();
        const claims = await deps.jwt.verify(body.mfa_token, "mfa").catch(() => {
          throw unauthenticated("the MFA challenge is invalid or expired (5 minutes); sign in again");
        });
        const tries = await deps.store.hit(`mfa-fail:${claims.sub}`, 300_000);
        if (tries.count > 5)
          throw tooMany("too many wrong codes; wait 5 minutes and sign in again", tries.resetMs);
        if (!body.code && !body.recovery_code) {
          throw new CollectorError("BAD_REQUEST", "send `code` (authenticator) or `recovery_code`", {
            status: 422,
            details: [{ path: "body/code", message: "required unless recovery_code is given" }],
          });
        }
        const c = {
          ip: clientIp(deps, request, server),
          userAgent: request.headers.get("user-agent")?.slice(0, 512) ?? null,
        };
        const u = await withAdmin(deps.sql, async (tx) => {
          const user = await loadUser(tx, claims.sub);
          if (!user?.mfa_enabled) return null;
          const ok = body.code
            ? await acceptCode(tx, user, body.code)
            : await useRecoveryCode(tx, user.id, body.recovery_code ?? "");
          return ok ? user : null;
        });
        if (!u) throw unauthenticated("wrong or already used code; wait for the next code and try again");
        await deps.store.del(`mfa-fail:${claims.sub}`);
        return completeLogin(u, c, body.code ? "password+totp" : "password+recovery_code");
      },
      {
        body: t.Object(
          {
            mfa_token: t.String({ maxLength: 2000 }),
            code: t.Optional(Code),
            recovery_code: t.Optional(t.String({ maxLength: 20 })),
          },
          { additionalProperties: false },
        ),
        detail: { summary: "Second sign-in step: TOTP code or recovery code", tags: ["auth"] },
      },
    )
    .post(
      "/mfa/enroll",
      async ({ req }) => {
        if (!mfa.enabled) throw disabledError();
        if (!req.principal.userId) throw unauthenticated("API keys cannot enrol MFA");
        const userId = req.principal.userId;
        const secret = newTotpSecret();
        const email = await withAdmin(deps.sql, async (tx) => {
          const u = await loadUser(tx, userId);
          if (!u) throw unauthenticated();
          if (u.mfa_enabled)
            throw conflict("MFA is already active; disable it first to enrol a new authenticator");
          await tx`update users set totp_secret_encrypted = ${deps.keyring.seal(secret, secretContext(userId))},
                                    totp_last_step = null
                   where id = ${userId}`;
          await audit(
            tx,
            { ...req, tenantId: u.tenant_id },
            { action: "user.mfa_enrolment_started", resourceType: "user", resourceId: userId },
          );
          return u.email;
        });
        const uri = totpUri(secret, mfa.issuer, email);
        // the QR code drawn here: an appliance's browser may have no way to fetch a QR library or service
        return {
          secret,
          otpauth_uri: uri,
          qr_svg: renderSVG(uri, { border: 2, pixelSize: 6 }),
          issuer: mfa.issuer,
        };
      },
      {
        auth: { role: "viewer", tenant: false, restricted: true },
        detail: {
          summary: "Start MFA enrolment: secret, otpauth:// URI and its QR code (SVG)",
          tags: ["auth"],
        },
      },
    )
    .post(
      "/mfa/activate",
      async ({ body, req }) => {
        if (!mfa.enabled) throw disabledError();
        const userId = req.principal.userId;
        if (!userId) throw unauthenticated("API keys cannot enrol MFA");
        const codes = Array.from({ length: 10 }, recoveryCode);
        const u = await withAdmin(deps.sql, async (tx) => {
          const user = await loadUser(tx, userId);
          if (!user) throw unauthenticated();
          if (user.mfa_enabled) throw conflict("MFA is already active");
          if (!user.totp_secret_encrypted) throw conflict("start with POST /api/v1/auth/mfa/enroll");
          if (!(await acceptCode(tx, user, body.code))) return null;
          await tx`update users set mfa_enabled = true where id = ${userId}`;
          await tx`delete from user_recovery_codes where user_id = ${userId}`;
          for (const c of codes) {
            await tx`insert into user_recovery_codes (user_id, code_hash) values (${userId}, ${sha256(c)})`;
          }
          await audit(
            tx,
            { ...req, tenantId: user.tenant_id },
            {
              action: "user.mfa_enabled",
              resourceType: "user",
              resourceId: userId,
            },
          );
          return user;
        });
        if (!u)
          throw unauthenticated("wrong code: check the authenticator app's clock and try the next code");
        const session = req.principal.restricted
          ? await completeLogin(
              { ...u, mfa_enabled: true },
              { ip: req.ip, userAgent: req.userAgent },
              "mfa_enrolment",
            )
          : undefined;
        return { mfa_enabled: true, recovery_codes: codes, ...(session ? { session } : {}) };
      },
      {
        auth: { role: "viewer", tenant: false, restricted: true },
        body: t.Object({ code: Code }, { additionalProperties: false }),
        detail: {
          summary: "Finish MFA enrolment with a first code; returns recovery codes once",
          tags: ["auth"],
        },
      },
    )
    .post(
      "/mfa/disable",
      async ({ body, req }) => {
        const userId = req.principal.userId;
        if (!userId) throw unauthenticated("API keys have no MFA");
        await reauth.check(userId);
        const ok = await withAdmin(deps.sql, async (tx) => {
          const u = await loadUser(tx, userId);
          if (!u?.mfa_enabled) throw conflict("MFA is not active");
          if (mfa.enabled && (await tenantRequiresMfa(tx, u.tenant_id))) {
            throw conflict(
              "your tenant requires multi-factor authentication, so it cannot be turned off; to move to a new " +
                "authenticator, ask an administrator to reset your MFA, then enrol again",
            );
          }
          if (!(await verifyPassword(body.password, u.password_hash))) return false;
          if (!(await acceptCode(tx, u, body.code))) return false;
          await tx`update users set mfa_enabled = false, totp_secret_encrypted = null, totp_last_step = null
                   where id = ${userId}`;
          await tx`delete from user_recovery_codes where user_id = ${userId}`;
          await audit(
            tx,
            { ...req, tenantId: u.tenant_id },
            {
              action: "user.mfa_disabled",
              resourceType: "user",
              resourceId: userId,
            },
          );
          return true;
        });
        if (!ok) {
          await reauth.fail(userId);
          throw unauthenticated("wrong password or code");
        }
        return { mfa_enabled: false };
      },
      {
        auth: { role: "viewer", tenant: false },
        body: t.Object(
          { password: t.String({ maxLength: 256 }), code: Code },
          { additionalProperties: false },
        ),
        detail: { summary: "Turn MFA off (password and a current code)", tags: ["auth"] },
      },
    );
}
