/**
 * Users of the caller's tenant (admin). Roles up to admin (superadmins have no tenant and are created at
 * setup). Passwords are write-only; an admin may also unlock an account, reset its MFA, or disable it (which
 * signs it out everywhere). An admin cannot change its own role or disable itself (no accidental lock-out).
 */
import { Elysia, t } from "elysia";
import { checkPasswordPolicy, hashPassword } from "../../auth/passwords.ts";
import { revokeUserSessions } from "../../auth/sessions.ts";
import { CollectorError } from "../../lib/errors.ts";
import { withAdmin, withTenant } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { audit } from "../lib/audit.ts";
import { mapWriteError, notFound } from "../lib/http-errors.ts";
import { likePattern, list, PageQuery } from "../lib/list.ts";
import { IdParams } from "../lib/params.ts";
import { stopAccessTokens } from "../lib/session-opts.ts";
import { forgetPrincipals } from "../principal.ts";

const COLS =
  "id, tenant_id, email, name, role, mfa_enabled, disabled, sso_provider, last_login, locked_until, created_at, updated_at";
const TenantRole = t.Union([t.Literal("viewer"), t.Literal("operator"), t.Literal("admin")]);
const Email = t.String({ minLength: 3, maxLength: 254, pattern: "^[^@\\s]+@[^@\\s]+$" });

export function userRoutes(deps: ApiDeps) {
  const signOut = async (userId: string) => {
    const families = await withAdmin(deps.sql, (tx) => revokeUserSessions(tx, userId, new Date(deps.now())));
    await stopAccessTokens(deps, families);
  };
  return new Elysia({ name: "api/users", prefix: "/api/v1/users" })
    .use(guardPlugin(deps))
    .get(
      "/",
      ({ query, req }) =>
        withTenant(deps.sql, req.tenantId, (tx) =>
          list(tx, {
            from: tx`select ${tx.unsafe(COLS)} from users`,
            where: [
              ...(query.role ? [tx`role = ${query.role}`] : []),
              ...(query.q
                ? [tx`(email ilike ${likePattern(query.q)} or name ilike ${likePattern(query.q)})`]
                : []),
            ],
            sortable: ["email", "name", "role", "created_at", "last_login"],
            defaultSort: "email",
            query,
          }),
        ).catch((e) => {
          throw mapWriteError(e);
        }),
      {
        auth: "admin",
        query: t.Object({
          ...PageQuery,
          role: t.Optional(TenantRole),
          q: t.Optional(t.String({ maxLength: 200 })),
        }),
        detail: { summary: "List users of the tenant", tags: ["users"] },
      },
    )
    .get(
      "/:id",
      async ({ params, req }) => {
        const [r] = await withTenant(
          deps.sql,
          req.tenantId,
          (tx) => tx`select ${tx.unsafe(COLS)} from users where id = ${params.id}`,
        );
        if (!r) throw notFound("user");
        return r;
      },
      { auth: "admin", params: IdParams, detail: { summary: "Get a user", tags: ["users"] } },
    )
    .post(
      "/",
      async ({ body, req, set }) => {
        if (body.password !== undefined) checkPasswordPolicy(body.password);
        const hash = body.password === undefined ? null : await hashPassword(body.password);
        const r = await withTenant(deps.sql, req.tenantId, async (tx) => {
          const [u] = await tx`
            insert into users (tenant_id, email, name, role, password_hash)
            values (${req.tenantId}, ${body.email}, ${body.name ?? null}, ${body.role}, ${hash})
            returning ${tx.unsafe(COLS)}`;
          await audit(tx, req, { action: "user.create", resourceType: "user", resourceId: u?.id, new: u });
          return u;
        }).catch((e) => {
          throw mapWriteError(e);
        });
        set.status = 201;
        return r;
      },
      {
        auth: "admin",
        body: t.Object(
          {
            email: Email,
            name: t.Optional(t.String({ maxLength: 200 })),
            role: TenantRole,
            password: t.Optional(t.String({ maxLength: 256 })),
          },
          { additionalProperties: false },
        ),
        detail: { summary: "Create a user (password optional for single-sign-on users)", tags: ["users"] },
      },
    )
    .patch(
      "/:id",
      async ({ params, body, req }) => {
        const self = params.id === req.principal.userId;
        if (self && (body.role !== undefined || body.disabled === true)) {
          throw new CollectorError(
            "FORBIDDEN",
            "you cannot change your own role or disable yourself; ask another admin",
          );
        }
        if (body.password !== undefined) checkPasswordPolicy(body.password);
        const hash = body.password === undefined ? null : await hashPassword(body.password);
        const r = await withTenant(deps.sql, req.tenantId, async (tx) => {
          const [old] = await tx`select ${tx.unsafe(COLS)} from users where id = ${params.id} for update`;
          if (!old) throw notFound("user");
          const [u] = await tx`
            update users set
              name = coalesce(${body.name ?? null}, name),
              role = coalesce(${body.role ?? null}, role),
              disabled = coalesce(${body.disabled ?? null}, disabled),
              password_hash = coalesce(${hash}, password_hash),
              failed_logins = case when ${body.unlock === true} then 0 else failed_logins end,
              lockouts = case when ${body.unlock === true} then 0 else lockouts end,
              locked_until = case when ${body.unlock === true} then null else locked_until end,
              mfa_enabled = case when ${body.reset_mfa === true} then false else mfa_enabled end,
              totp_secret_encrypted = case when ${body.reset_mfa === true} then null else totp_secret_encrypted end,
              totp_last_step = case when ${body.reset_mfa === true} then null else totp_last_step end
            where id = ${params.id} returning ${tx.unsafe(COLS)}`;
          await audit(tx, req, {
            action: "user.update",
            resourceType: "user",
            resourceId: params.id,
            old,
            new: { ...u, ...(hash ? { password: "changed" } : {}) },
          });
          return u;
        }).catch((e) => {
          throw mapWriteError(e);
        });
        if (body.disabled === true || body.role !== undefined || hash || body.reset_mfa)
          await signOut(params.id);
        if (body.reset_mfa)
          await withAdmin(deps.sql, (tx) => tx`delete from user_recovery_codes where user_id = ${params.id}`);
        return r;
      },
      {
        auth: "admin",
        params: IdParams,
        body: t.Object(
          {
            name: t.Optional(t.String({ maxLength: 200 })),
            role: t.Optional(TenantRole),
            disabled: t.Optional(t.Boolean()),
            password: t.Optional(t.String({ maxLength: 256 })),
            unlock: t.Optional(t.Boolean()),
            reset_mfa: t.Optional(t.Boolean()),
          },
          { additionalProperties: false },
        ),
        detail: {
          summary: "Update a user: name, role, disabled, password, unlock, reset MFA",
          tags: ["users"],
        },
      },
    )
    .delete(
      "/:id",
      async ({ params, req, set }) => {
        if (params.id === req.principal.userId) {
          throw new CollectorError("FORBIDDEN", "you cannot delete yourself; ask another admin");
        }
        const exists = await withTenant(
          deps.sql,
          req.tenantId,
          (tx) => tx`select 1 from users where id = ${params.id}`,
        );
        if (!exists.length) throw notFound("user");
        // the user row is cached for a few seconds (src/api/principal.ts): revoking the sessions (before the
        // refresh tokens go with the user) stops their access tokens now, on every instance
        await signOut(params.id);
        await withTenant(deps.sql, req.tenantId, async (tx) => {
          const [old] = await tx`delete from users where id = ${params.id} returning ${tx.unsafe(COLS)}`;
          if (!old) throw notFound("user");
          await audit(tx, req, { action: "user.delete", resourceType: "user", resourceId: params.id, old });
        });
        forgetPrincipals(deps, params.id);
        set.status = 204;
      },
      { auth: "admin", params: IdParams, detail: { summary: "Delete a user", tags: ["users"] } },
    );
}
