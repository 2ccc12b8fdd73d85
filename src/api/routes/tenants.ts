/**
 * Tenants. Superadmins manage every tenant under /api/v1/admin/tenants (platform routes, secumon_admin);
 * a tenant admin reads and updates its own under /api/v1/tenant (RLS: a tenant session sees only its row).
 * Deleting a tenant cascades to everything it owns; its audit entry is a platform event (tenant_id NULL).
 */
import { Elysia, t } from "elysia";
import { withAdmin, withTenant } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { audit } from "../lib/audit.ts";
import { mapWriteError, notFound } from "../lib/http-errors.ts";
import { likePattern, list, PageQuery } from "../lib/list.ts";
import { IdParams, Name } from "../lib/params.ts";
import { stopAccessTokens } from "../lib/session-opts.ts";
import { forgetPrincipals } from "../principal.ts";

export function slugify(name: string): string {
  const s = name
    .normalize("NFKD")
    .replace(/\p{M}/gu, "") // the accents NFKD split off: "É" is "e", not "e-"
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/g, "");
  return s || `tenant-${crypto.randomUUID().slice(0, 8)}`;
}

const Slug = t.String({ pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" });
const Settings = t.Object(
  {
    mfa_required: t.Optional(t.Boolean()),
    timezone: t.Optional(t.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
const COLS = "id, name, slug, settings, created_at, updated_at";

export function tenantRoutes(deps: ApiDeps) {
  const platform = { role: "superadmin" as const, tenant: false };
  return new Elysia({ name: "api/tenants" })
    .use(guardPlugin(deps))
    .get(
      "/api/v1/admin/tenants",
      ({ query }) =>
        withAdmin(deps.sql, (tx) =>
          list(tx, {
            from: tx`select ${tx.unsafe(COLS)} from tenants`,
            where: query.q
              ? [tx`(name ilike ${likePattern(query.q)} or slug ilike ${likePattern(query.q)})`]
              : [],
            sortable: ["name", "slug", "created_at"],
            defaultSort: "name",
            query,
          }),
        ),
      {
        auth: platform,
        query: t.Object({ ...PageQuery, q: t.Optional(t.String({ maxLength: 200 })) }),
        detail: { summary: "List tenants (superadmin)", tags: ["tenants"] },
      },
    )
    .post(
      "/api/v1/admin/tenants",
      async ({ body, req, set }) => {
        const row = await withAdmin(deps.sql, async (tx) => {
          const [r] = await tx`
            insert into tenants (name, slug, settings)
            values (${body.name.trim()}, ${body.slug ?? slugify(body.name)}, ${tx.json(body.settings ?? {})})
            returning ${tx.unsafe(COLS)}`;
          await audit(
            tx,
            { ...req, tenantId: null },
            {
              action: "tenant.create",
              resourceType: "tenant",
              resourceId: r?.id,
              new: r,
            },
          );
          return r;
        }).catch((e) => {
          throw mapWriteError(e);
        });
        set.status = 201;
        return row;
      },
      {
        auth: platform,
        body: t.Object(
          { name: Name, slug: t.Optional(Slug), settings: t.Optional(Settings) },
          { additionalProperties: false },
        ),
        detail: { summary: "Create a tenant (superadmin)", tags: ["tenants"] },
      },
    )
    .get(
      "/api/v1/admin/tenants/:id",
      async ({ params }) => {
        const [r] = await withAdmin(
          deps.sql,
          (tx) => tx`select ${tx.unsafe(COLS)} from tenants where id = ${params.id}`,
        );
        if (!r) throw notFound("tenant");
        return r;
      },
      {
        auth: platform,
        params: IdParams,
        detail: { summary: "Get a tenant (superadmin)", tags: ["tenants"] },
      },
    )
    .patch("/api/v1/admin/tenants/:id", ({ params, body, req }) => updateTenant(params.id, body, req, true), {
      auth: platform,
      params: IdParams,
      body: t.Object(
        { name: t.Optional(Name), slug: t.Optional(Slug), settings: t.Optional(Settings) },
        { additionalProperties: false },
      ),
      detail: { summary: "Update a tenant (superadmin)", tags: ["tenants"] },
    })
    .delete(
      "/api/v1/admin/tenants/:id",
      async ({ params, req, set }) => {
        await withAdmin(deps.sql, async (tx) => {
          const [old] = await tx`delete from tenants where id = ${params.id} returning ${tx.unsafe(COLS)}`;
          if (!old) throw notFound("tenant");
          await audit(
            tx,
            { ...req, tenantId: null },
            {
              action: "tenant.delete",
              resourceType: "tenant",
              resourceId: params.id,
              old,
            },
          );
        });
        forgetPrincipals(deps); // its users and API keys are gone: no cached principal outlives them here
        set.status = 204;
      },
      {
        auth: platform,
        params: IdParams,
        detail: { summary: "Delete a tenant and everything it owns (superadmin)", tags: ["tenants"] },
      },
    )
    .get(
      "/api/v1/tenant",
      async ({ req }) => {
        const [r] = await withTenant(
          deps.sql,
          req.tenantId,
          (tx) => tx`select ${tx.unsafe(COLS)} from tenants`,
        );
        if (!r) throw notFound("tenant");
        return r;
      },
      { auth: "viewer", detail: { summary: "My tenant", tags: ["tenants"] } },
    )
    .patch("/api/v1/tenant", ({ body, req }) => updateTenant(req.tenantId, body, req, false), {
      auth: "admin",
      body: t.Object(
        { name: t.Optional(Name), settings: t.Optional(Settings) },
        { additionalProperties: false },
      ),
      detail: { summary: "Update my tenant (name, settings such as mfa_required)", tags: ["tenants"] },
    });

  async function updateTenant(
    id: string,
    body: { name?: string; slug?: string; settings?: Record<string, unknown> },
    req: Parameters<typeof audit>[1],
    platformRoute: boolean,
  ) {
    const run = platformRoute
      ? <T>(fn: Parameters<typeof withAdmin<T>>[1]) => withAdmin(deps.sql, fn)
      : <T>(fn: Parameters<typeof withAdmin<T>>[1]) => withTenant(deps.sql, id, fn);
    const { old, r } = await run(async (tx) => {
      const [old] = await tx`select ${tx.unsafe(COLS)} from tenants where id = ${id} for update`;
      if (!old) throw notFound("tenant");
      const [r] = await tx`
        update tenants set
          name = coalesce(${body.name?.trim() ?? null}, name),
          slug = coalesce(${body.slug ?? null}, slug),
          settings = settings || ${tx.json((body.settings ?? {}) as never)}
        where id = ${id} returning ${tx.unsafe(COLS)}`;
      await audit(
        tx,
        { ...req, tenantId: id },
        {
          action: "tenant.update",
          resourceType: "tenant",
          resourceId: id,
          old,
          new: r,
        },
      );
      return { old, r };
    }).catch((e) => {
      throw mapWriteError(e);
    });
    if (old?.settings?.mfa_required !== true && r?.settings?.mfa_required === true) {
      await signOutWithoutMfa(id, req.principal.sid);
    }
    return r;
  }

  /**
   * The tenant now requires MFA: its password users who have not enrolled are signed out, so their next
   * sign-in gives them the enrolment-only token instead of their sessions going on, refresh after refresh,
   * without a second factor. The caller's own access token keeps working until it expires (its refresh token
   * does not), so the answer to this request is not its last. Single-sign-on users are left to their identity
   * provider's own MFA (docs/api.md).
   */
  async function signOutWithoutMfa(tenantId: string, keepSid: string) {
    const now = new Date(deps.now());
    const families = await withAdmin(deps.sql, async (tx) => {
      const rows = await tx<{ family_id: string }[]>`
        update refresh_tokens r set revoked_at = ${now}
        from users u
        where u.id = r.user_id and u.tenant_id = ${tenantId} and not u.mfa_enabled and u.sso_provider is null
          and r.revoked_at is null
        returning r.family_id`;
      return [...new Set(rows.map((x) => x.family_id))].filter((f) => f !== keepSid);
    });
    await stopAccessTokens(deps, families);
  }
}
