/**
 * Credentials of the caller's tenant, each shown once at creation and stored only as a SHA-256 hash:
 * enrollment tokens for agents/probes (`smet_…`, the gateway consumes them) and API keys for automation
 * (`smk_…`, a role up to admin, optional expiry). Listing never returns a token; DELETE revokes.
 */
import { readFileSync } from "node:fs";
import type { Static } from "@sinclair/typebox";
import { Elysia, t } from "elysia";
import { randomSecret, sha256 } from "../../auth/secrets.ts";
import { CollectorError } from "../../lib/errors.ts";
import { generateEnrollmentToken } from "../../pki/tokens.ts";
import { type Tx, withAdmin, withTenant } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin, type RequestInfo } from "../guard.ts";
import { audit } from "../lib/audit.ts";
import { invalid, mapWriteError, notFound } from "../lib/http-errors.ts";
import { type ListSpec, list, PageQuery } from "../lib/list.ts";
import { IdParams, Name } from "../lib/params.ts";
import { API_KEY_PREFIX, PRINCIPAL_CACHE_MS, revokedApiKeyKey } from "../principal.ts";

const TOKEN_COLS =
  "id, tenant_id, label, principal_kind, expires_at, max_uses, uses, revoked_at, created_by, created_at, updated_at";
const KEY_COLS =
  "id, tenant_id, name, prefix, role, created_by, expires_at, last_used_at, revoked_at, created_at";
const MAX_TTL_S = 365 * 86400;

export function credentialRoutes(deps: ApiDeps) {
  const tx = <T>(req: RequestInfo, fn: (tx: Tx) => Promise<T>) =>
    withTenant(deps.sql, req.tenantId, fn).catch((e) => {
      throw mapWriteError(e);
    });
  const future = (seconds: number, path: string) => {
    if (seconds <= 0 || seconds > MAX_TTL_S)
      throw invalid(path, `must be between 1 and ${MAX_TTL_S} seconds`);
    return new Date(deps.now() + seconds * 1000);
  };

  return new Elysia({ name: "api/credentials", prefix: "/api/v1" })
    .use(guardPlugin(deps))
    .get(
      "/enrollment-tokens",
      ({ query, req }) =>
        tx(req, (t) =>
          list(t, {
            from: t`select ${t.unsafe(TOKEN_COLS)},
                           (revoked_at is null and expires_at > now() and (max_uses is null or uses < max_uses)) as active
                    from enrollment_tokens`,
            where:
              query.active === undefined
                ? []
                : [
                    t`(revoked_at is null and expires_at > now() and (max_uses is null or uses < max_uses)) = ${query.active}`,
                  ],
            sortable: ["created_at", "expires_at", "label"],
            defaultSort: "-created_at",
            query,
          }),
        ),
      {
        auth: "admin",
        query: t.Object({ ...PageQuery, active: t.Optional(t.Boolean()) }),
        detail: { summary: "List enrollment tokens (never the token itself)", tags: ["enrollment"] },
      },
    )
    .post(
      "/enrollment-tokens",
      async ({ body, req, set }) => {
        const { token, hash } = generateEnrollmentToken();
        const expires = future(body.expires_in_seconds ?? 86400, "body/expires_in_seconds");
        const row = await tx(req, async (t) => {
          const [r] = await t`
            insert into enrollment_tokens (tenant_id, label, principal_kind, token_hash, expires_at, max_uses, created_by)
            values (${req.tenantId}, ${body.label ?? ""}, ${body.principal_kind ?? "agent"}, ${hash}, ${expires},
                    ${body.max_uses ?? null}, ${req.principal.userId})
            returning ${t.unsafe(TOKEN_COLS)}`;
          await audit(t, req, {
            action: "enrollment_token.create",
            resourceType: "enrollment_token",
            resourceId: r?.id,
            new: r,
          });
          return r;
        });
        set.status = 201;
        return { ...row, token };
      },
      {
        auth: "admin",
        body: t.Object(
          {
            label: t.Optional(t.String({ maxLength: 200 })),
            principal_kind: t.Optional(
              t.Union([t.Literal("agent"), t.Literal("probe"), t.Literal("collector")]),
            ),
            expires_in_seconds: t.Optional(t.Integer({ minimum: 1, maximum: MAX_TTL_S })),
            max_uses: t.Optional(t.Integer({ minimum: 1, maximum: 1_000_000 })),
          },
          { additionalProperties: false },
        ),
        detail: { summary: "Create an enrollment token (returned once, in `token`)", tags: ["enrollment"] },
      },
    )
    .delete(
      "/enrollment-tokens/:id",
      ({ params, req }) =>
        tx(req, async (t) => {
          const [old] =
            await t`select ${t.unsafe(TOKEN_COLS)} from enrollment_tokens where id = ${params.id} for update`;
          if (!old) throw notFound("enrollment token");
          const [r] = await t`
            update enrollment_tokens set revoked_at = coalesce(revoked_at, now()) where id = ${params.id}
            returning ${t.unsafe(TOKEN_COLS)}`;
          await audit(t, req, {
            action: "enrollment_token.revoke",
            resourceType: "enrollment_token",
            resourceId: params.id,
            old,
            new: r,
          });
          return r;
        }),
      {
        auth: "admin",
        params: IdParams,
        detail: { summary: "Revoke an enrollment token", tags: ["enrollment"] },
      },
    )
    .get(
      "/enrollment-ca",
      async () => {
        // an operator-supplied CA (gateway.tls.ca_file) wins, as in the gateway; else the collector's own CA,
        // platform-wide (no tenant): read with the login role, like the gateway. Its private key is never read.
        const file = deps.config.gateway.tls.ca_file;
        if (file) {
          try {
            return { certificate_pem: readFileSync(file, "utf8"), source: "gateway.tls.ca_file" as const };
          } catch {
            throw new CollectorError(
              "NOT_FOUND",
              "gateway.tls.ca_file cannot be read by the API: give agents that CA certificate file directly, or check its path and permissions",
            );
          }
        }
        const [row] = await deps.sql<{ cert_pem: string }[]>`select cert_pem from gateway_ca where id = 1`;
        if (row) return { certificate_pem: row.cert_pem, source: "collector" as const };
        throw new CollectorError(
          "NOT_FOUND",
          "the collector CA does not exist yet: it is created when the gateway role first starts; start it (serve --roles gateway) and retry",
        );
      },
      {
        // platform-wide, like the gateway: tenant admins and superadmins alike, no X-Tenant-ID needed
        auth: { role: "admin", tenant: false },
        detail: {
          summary:
            "The CA certificate (PEM) agents and probes trust when they enroll with a token (give it to them with the token)",
          tags: ["enrollment"],
        },
      },
    )
    .get(
      "/api-keys",
      ({ query, req }) =>
        tx(req, (t) =>
          list(t, {
            from: t`select ${t.unsafe(KEY_COLS)} from api_keys`,
            where: [],
            sortable: ["created_at", "name", "last_used_at"],
            defaultSort: "-created_at",
            query,
          }),
        ),
      { auth: "admin", query: t.Object(PageQuery), detail: { summary: "List API keys", tags: ["api-keys"] } },
    )
    .post(
      "/api-keys",
      async ({ body, req, set }) => {
        const key = randomSecret(API_KEY_PREFIX);
        const expires = body.expires_in_seconds
          ? future(body.expires_in_seconds, "body/expires_in_seconds")
          : null;
        const row = await tx(req, async (t) => {
          const [r] = await t`
            insert into api_keys (tenant_id, name, prefix, key_hash, role, created_by, expires_at)
            values (${req.tenantId}, ${body.name}, ${key.slice(0, 10)}, ${sha256(key)}, ${body.role},
                    ${req.principal.userId}, ${expires})
            returning ${t.unsafe(KEY_COLS)}`;
          await audit(t, req, {
            action: "api_key.create",
            resourceType: "api_key",
            resourceId: r?.id,
            new: r,
          });
          return r;
        });
        set.status = 201;
        return { ...row, key };
      },
      {
        auth: "admin",
        body: t.Object(
          {
            name: Name,
            role: t.Union([t.Literal("viewer"), t.Literal("operator"), t.Literal("admin")]),
            expires_in_seconds: t.Optional(t.Integer({ minimum: 1, maximum: MAX_TTL_S })),
          },
          { additionalProperties: false },
        ),
        detail: { summary: "Create an API key (returned once, in `key`)", tags: ["api-keys"] },
      },
    )
    .delete(
      "/api-keys/:id",
      async ({ params, req }) => {
        const revoked = await tx(req, async (t) => {
          const [old] =
            await t`select ${t.unsafe(KEY_COLS)} from api_keys where id = ${params.id} for update`;
          if (!old) throw notFound("API key");
          const [r] = await t`
            update api_keys set revoked_at = coalesce(revoked_at, now()) where id = ${params.id}
            returning ${t.unsafe(KEY_COLS)}`;
          await audit(t, req, {
            action: "api_key.revoke",
            resourceType: "api_key",
            resourceId: params.id,
            old,
            new: r,
          });
          return r;
        });
        // API keys are cached for PRINCIPAL_CACHE_MS (src/api/principal.ts): this flag stops it at once
        await deps.store.flag(revokedApiKeyKey(params.id), 2 * PRINCIPAL_CACHE_MS);
        return revoked;
      },
      { auth: "admin", params: IdParams, detail: { summary: "Revoke an API key", tags: ["api-keys"] } },
    )
    .get("/audit-logs", ({ query, req }) => tx(req, (t) => auditList(t, query, [])), {
      auth: "admin",
      query: t.Object(AuditQuery),
      detail: { summary: "Audit log of the tenant", tags: ["audit"] },
    })
    .get(
      "/admin/audit-logs",
      ({ query }) =>
        withAdmin(deps.sql, (t) =>
          auditList(t, query, [
            ...(query.tenant_id ? [t`tenant_id = ${query.tenant_id}`] : []),
            ...(query.platform === undefined
              ? []
              : [query.platform ? t`tenant_id is null` : t`tenant_id is not null`]),
          ]),
        ),
      {
        auth: { role: "superadmin", tenant: false },
        query: t.Object({
          ...AuditQuery,
          tenant_id: t.Optional(t.String({ format: "uuid" })),
          platform: t.Optional(t.Boolean({ description: "true: platform events only (no tenant)" })),
        }),
        detail: {
          summary:
            "Audit log of the whole platform (superadmin): every tenant's entries and the platform events (tenants created or deleted, superadmin sign-ins)",
          tags: ["audit"],
        },
      },
    );
}

const AuditQuery = {
  ...PageQuery,
  action: t.Optional(t.String({ maxLength: 100 })),
  resource_type: t.Optional(t.String({ maxLength: 100 })),
  resource_id: t.Optional(t.String({ format: "uuid" })),
  actor: t.Optional(t.String({ maxLength: 254 })),
  from: t.Optional(t.String({ format: "date-time" })),
  to: t.Optional(t.String({ format: "date-time" })),
};

/** The filters both audit lists take (the tenant's and the platform's). */
type AuditFilters = Static<ReturnType<typeof t.Object<typeof AuditQuery>>>;

function auditList(t: Tx, query: AuditFilters, more: ListSpec["where"]) {
  return list(t, {
    from: t`select id, tenant_id, user_id, actor, action, resource_type, resource_id, old_value, new_value,
                   host(ip_address) as ip_address, user_agent, created_at
            from audit_logs`,
    where: [
      ...(query.action ? [t`action = ${query.action}`] : []),
      ...(query.resource_type ? [t`resource_type = ${query.resource_type}`] : []),
      ...(query.resource_id ? [t`resource_id = ${query.resource_id}`] : []),
      ...(query.actor ? [t`actor = ${query.actor}`] : []),
      ...(query.from ? [t`created_at >= ${new Date(query.from)}`] : []),
      ...(query.to ? [t`created_at < ${new Date(query.to)}`] : []),
      ...more,
    ],
    sortable: ["created_at", "action", "actor"],
    defaultSort: "-created_at",
    query,
  });
}
