/**
 * Single sign-on with OpenID Connect: the JumpCloud preset (`/api/v1/auth/sso/jumpcloud`, api.auth.jumpcloud)
 * and any other provider (`/api/v1/auth/sso/oidc`, api.auth.oidc).
 *
 *   GET  /auth/sso                       enabled providers, for the sign-in page
 *   GET  /auth/sso/:provider?return_to=/  302 to the provider; sets the sealed flow cookie (state, nonce, PKCE)
 *   GET  /auth/sso/:provider/callback     checks state, exchanges the code, verifies the ID token (nonce…),
 *                                         links or provisions the user, then 302 to `return_to#sso_code=…`
 *   POST /auth/sso/exchange {code}        the one-minute, one-time code → access + refresh tokens
 *
 * Users are found by (sso_provider, sso_id); else an existing tenant user with the same e-mail address (not
 * marked unverified by the provider, not yet linked) is linked; else, when `tenant` is configured, a user is
 * created there with `default_role`. Superadmins are never linked by e-mail. Multi-factor authentication of
 * SSO sign-ins is the identity provider's business (the local TOTP applies to password sign-ins).
 */
import { Elysia, t } from "elysia";
import {
  FLOW_TTL_MS,
  OidcClient,
  type OidcIdentity,
  type OidcProviderConfig,
  refused,
} from "../../auth/oidc.ts";
import { issueSession } from "../../auth/sessions.ts";
import { CollectorError } from "../../lib/errors.ts";
import { type Tx, withAdmin } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { audit } from "../lib/audit.ts";
import { notFound } from "../lib/http-errors.ts";
import { sessionOptions } from "../lib/session-opts.ts";
import { clientIp } from "../principal.ts";

const COOKIE = "secumon_sso";
const COOKIE_PATH = "/api/v1/auth/sso/";
const CODE_TTL_S = 60;
const Provider = t.Union([t.Literal("jumpcloud"), t.Literal("oidc")]);

interface ProviderSettings {
  cfg: OidcProviderConfig;
  tenant: string;
  defaultRole: string;
}

export function baseUrl(deps: ApiDeps): string {
  const a = deps.config.api;
  return (a.public_url || `${a.tls.enabled ? "https" : "http"}://${a.host}:${a.port}`).replace(/\/+$/, "");
}

function configuredProviders(deps: ApiDeps): ProviderSettings[] {
  const { jumpcloud: jc, oidc } = deps.config.api.auth;
  const cb = (id: string) => `${baseUrl(deps)}/api/v1/auth/sso/${id}/callback`;
  const out: ProviderSettings[] = [];
  if (jc.enabled) {
    out.push({
      cfg: {
        id: "jumpcloud",
        displayName: "JumpCloud",
        issuer: jc.issuer,
        clientId: jc.client_id,
        clientSecret: jc.client_secret,
        scopes: "openid email profile",
        redirectUri: cb("jumpcloud"),
      },
      tenant: jc.tenant,
      defaultRole: jc.default_role,
    });
  }
  if (oidc.enabled) {
    const missing = (["issuer", "client_id", "client_secret"] as const).filter((k) => oidc[k] === "");
    if (missing.length) {
      throw new CollectorError(
        "CONFIG_INVALID",
        `api.auth.oidc is enabled but ${missing.map((k) => `api.auth.oidc.${k}`).join(", ")} is empty: set it, or disable api.auth.oidc`,
      );
    }
    if (!oidc.scopes.split(/\s+/).includes("openid")) {
      throw new CollectorError("CONFIG_INVALID", "api.auth.oidc.scopes must include `openid`");
    }
    out.push({
      cfg: {
        id: "oidc",
        displayName: oidc.display_name,
        issuer: oidc.issuer,
        clientId: oidc.client_id,
        clientSecret: oidc.client_secret,
        scopes: oidc.scopes,
        redirectUri: cb("oidc"),
      },
      tenant: oidc.tenant,
      defaultRole: oidc.default_role,
    });
  }
  return out;
}

function readCookie(request: Request, name: string): string | null {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

function safeReturnTo(v: string | undefined): string {
  if (!v) return "/";
  if (!v.startsWith("/") || v.startsWith("//") || v.includes("\\") || /[\s#]/.test(v)) {
    throw new CollectorError(
      "BAD_REQUEST",
      "invalid query/return_to: must be a path on this site, such as /alerts",
      { status: 422, details: [{ path: "query/return_to", message: "a path starting with /" }] },
    );
  }
  return v;
}

interface SsoUser {
  id: string;
  email: string;
  role: string;
  tenant_id: string | null;
  disabled: boolean;
  sso_provider: string | null;
}

export function ssoRoutes(deps: ApiDeps) {
  const providers = new Map(
    configuredProviders(deps).map((p) => [
      p.cfg.id,
      { ...p, client: new OidcClient(p.cfg, deps.keyring, deps.now) },
    ]),
  );
  const secure = baseUrl(deps).startsWith("https:");
  const cookie = (value: string, maxAgeS: number) =>
    `${COOKIE}=${value}; Path=${COOKIE_PATH}; Max-Age=${maxAgeS}; HttpOnly; SameSite=Lax${secure ? "; Secure" : ""}`;
  const opts = sessionOptions(deps);
  const get = (id: string) => {
    const p = providers.get(id);
    if (!p) throw notFound(`single sign-on with ${id} (enable it with api.auth.${id}.enabled)`);
    return p;
  };
  const client = (request: Request, server: Parameters<typeof clientIp>[2]) => ({
    ip: clientIp(deps, request, server),
    userAgent: request.headers.get("user-agent")?.slice(0, 512) ?? null,
  });

  /** Finds, links or creates the user the identity provider vouched for. */
  async function resolveUser(
    p: ProviderSettings,
    who: OidcIdentity,
    c: { ip: string; userAgent: string | null },
  ): Promise<SsoUser> {
    const provider = p.cfg.id;
    return withAdmin(deps.sql, async (tx) => {
      const cols = tx`id, email, role, tenant_id, disabled, sso_provider`;
      const [linked] = await tx<SsoUser[]>`
        select ${cols} from users where sso_provider = ${provider} and sso_id = ${who.sub} for update`;
      if (linked) return usable(linked);
      const tenantId = p.tenant ? await tenantBySlug(tx, p) : null;
      if (who.email) {
        const [byEmail] = await tx<SsoUser[]>`
          select ${cols} from users where lower(email) = lower(${who.email}) for update`;
        if (byEmail) {
          if (byEmail.role === "superadmin" || (tenantId && byEmail.tenant_id !== tenantId)) {
            throw new CollectorError(
              "FORBIDDEN",
              "the account with this e-mail address cannot sign in with single sign-on; sign in with its password",
            );
          }
          if (byEmail.sso_provider) {
            throw new CollectorError(
              "CONFLICT",
              "this e-mail address is already linked to another single-sign-on identity; ask an administrator",
            );
          }
          // Linking hands this identity an existing account: only for an address the provider vouches for.
          // A provider that leaves email_verified out may let anyone claim any address (account takeover);
          // JumpCloud is an administrator-managed directory whose addresses are set by its administrators.
          const vouched =
            who.emailVerified === true || (p.cfg.id === "jumpcloud" && who.emailVerified === null);
          if (!vouched) {
            throw refused(
              who.emailVerified === false
                ? `${p.cfg.displayName} says this e-mail address is not verified`
                : `${p.cfg.displayName} did not say this e-mail address is verified (claim email_verified), so it ` +
                    "cannot be linked to the existing account; an administrator can create the account for single sign-on instead",
            );
          }
          await tx`update users set sso_provider = ${provider}, sso_id = ${who.sub} where id = ${byEmail.id}`;
          await audit(
            tx,
            {
              principal: { userId: byEmail.id, actor: byEmail.email } as never,
              tenantId: byEmail.tenant_id,
              ...c,
            },
            {
              action: "user.sso_linked",
              resourceType: "user",
              resourceId: byEmail.id,
              new: { sso_provider: provider },
            },
          );
          return usable(byEmail);
        }
      }
      if (!tenantId) {
        throw new CollectorError(
          "FORBIDDEN",
          `no account matches this ${p.cfg.displayName} identity; ask an administrator to create yours ` +
            `(or set api.auth.${provider}.tenant to create accounts at first sign-in)`,
        );
      }
      if (!who.email) {
        throw refused(
          `${p.cfg.displayName} shared no e-mail address (the \`email\` scope and claim are needed)`,
        );
      }
      const [created] = await tx<SsoUser[]>`
        insert into users (tenant_id, email, name, role, sso_provider, sso_id)
        values (${tenantId}, ${who.email}, ${who.name}, ${p.defaultRole}, ${provider}, ${who.sub})
        returning ${cols}`;
      if (!created) throw new Error("insert returned no row");
      await audit(
        tx,
        { principal: { userId: created.id, actor: created.email } as never, tenantId, ...c },
        {
          action: "user.sso_provisioned",
          resourceType: "user",
          resourceId: created.id,
          new: { email: created.email, role: created.role, sso_provider: provider },
        },
      );
      return created;
    });
  }

  const usable = (u: SsoUser): SsoUser => {
    if (u.disabled)
      throw new CollectorError("UNAUTHENTICATED", "this account is disabled; ask an administrator");
    return u;
  };

  async function tenantBySlug(tx: Tx, p: ProviderSettings): Promise<string> {
    const [r] = await tx<{ id: string }[]>`select id from tenants where slug = ${p.tenant}`;
    if (!r) {
      throw new CollectorError(
        "CONFIG_INVALID",
        `api.auth.${p.cfg.id}.tenant names no tenant ("${p.tenant}"): correct the slug or create that tenant`,
        { status: 503 },
      );
    }
    return r.id;
  }

  return new Elysia({ name: "api/sso", prefix: "/api/v1/auth/sso" })
    .get(
      "/",
      () => ({
        providers: [...providers.values()].map((p) => ({
          id: p.cfg.id,
          name: p.cfg.displayName,
          login_url: `/api/v1/auth/sso/${p.cfg.id}`,
        })),
      }),
      { detail: { summary: "Single-sign-on providers offered on the sign-in page", tags: ["auth"] } },
    )
    .get(
      "/:provider",
      async ({ params, query }) => {
        const p = get(params.provider);
        const { url, cookie: value } = await p.client.begin(safeReturnTo(query.return_to));
        return new Response(null, {
          status: 302,
          headers: {
            location: url.href,
            "set-cookie": cookie(value, FLOW_TTL_MS / 1000),
            "cache-control": "no-store",
          },
        });
      },
      {
        params: t.Object({ provider: Provider }),
        query: t.Object({ return_to: t.Optional(t.String({ maxLength: 512 })) }),
        detail: { summary: "Start single sign-on (redirects to the identity provider)", tags: ["auth"] },
      },
    )
    .get(
      "/:provider/callback",
      async ({ params, request, server }) => {
        const p = get(params.provider);
        const query = new URL(request.url).searchParams;
        const flow = p.client.openFlow(readCookie(request, COOKIE));
        const who = await p.client.finish(query, flow);
        const c = client(request, server);
        const u = await resolveUser(p, who, c);
        const code = await deps.jwt.sign(
          { sub: u.id, kind: "sso", sid: p.cfg.id, tid: u.tenant_id, role: u.role },
          CODE_TTL_S,
        );
        deps.log.info({ userId: u.id, provider: p.cfg.id }, "single sign-on succeeded");
        return new Response(null, {
          status: 302,
          headers: {
            location: `${flow.returnTo}#sso_code=${encodeURIComponent(code)}`,
            "set-cookie": cookie("", 0),
            "cache-control": "no-store",
          },
        });
      },
      {
        params: t.Object({ provider: Provider }),
        query: t.Object(
          {
            code: t.Optional(t.String({ maxLength: 2048 })),
            state: t.Optional(t.String({ maxLength: 512 })),
            iss: t.Optional(t.String({ maxLength: 2048 })),
            error: t.Optional(t.String({ maxLength: 200 })),
            error_description: t.Optional(t.String({ maxLength: 2048 })),
            session_state: t.Optional(t.String({ maxLength: 512 })),
          },
          { additionalProperties: true },
        ),
        detail: { summary: "Identity provider's redirect back (OIDC callback)", tags: ["auth"] },
      },
    )
    .post(
      "/exchange",
      async ({ body, request, server }) => {
        const claims = await deps.jwt.verify(body.code, "sso").catch(() => {
          throw refused("the sign-in code is invalid or expired");
        });
        const first = await deps.store.hit(`sso-code:${claims.jti}`, CODE_TTL_S * 2000);
        if (first.count !== 1) throw refused("the sign-in code was already used");
        const c = client(request, server);
        return withAdmin(deps.sql, async (tx) => {
          const [u] = await tx<SsoUser[]>`
            select id, email, role, tenant_id, disabled, sso_provider from users where id = ${claims.sub}`;
          if (!u || u.disabled || (u.tenant_id ?? null) !== (claims.tid ?? null))
            throw refused("this account no longer exists or is disabled");
          await tx`update users set last_login = ${new Date(deps.now())} where id = ${u.id}`;
          const tokens = await issueSession(tx, opts, u, c);
          await audit(
            tx,
            { principal: { userId: u.id, actor: u.email } as never, tenantId: u.tenant_id, ...c },
            { action: "auth.login", resourceType: "session", new: { method: `sso:${claims.sid}` } },
          );
          return tokens;
        });
      },
      {
        body: t.Object(
          { code: t.String({ minLength: 1, maxLength: 2048 }) },
          { additionalProperties: false },
        ),
        detail: { summary: "Exchange the single-sign-on code for a session", tags: ["auth"] },
      },
    );
}
