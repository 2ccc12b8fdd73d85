/**
 * SSO test set-up: a real oidc-provider on loopback registered for both our providers' callbacks, and an API
 * harness whose api.auth.jumpcloud / api.auth.oidc point at it.
 */
import { type Harness, harness, seedTenant } from "./harness.ts";
import { authorizeAtIdp, startIdp, type TestIdp } from "./oidc-idp.ts";

export const BASE = "http://localhost";

export async function ssoHarness(): Promise<{ h: Harness; idp: TestIdp; tenantId: string }> {
  const idp = await startIdp([
    `${BASE}/api/v1/auth/sso/jumpcloud/callback`,
    `${BASE}/api/v1/auth/sso/oidc/callback`,
  ]);
  const provider = { issuer: idp.issuer, client_id: idp.clientId, client_secret: idp.clientSecret };
  const h = await harness({
    public_url: BASE,
    auth: {
      jumpcloud: {
        enabled: true,
        org_id: "org-test",
        tenant: "sso-tenant",
        default_role: "operator",
        ...provider,
      },
      oidc: { enabled: true, display_name: "Keycloak", ...provider },
    },
  });
  const tenantId = await seedTenant(h, "sso-tenant");
  return { h, idp, tenantId };
}

/** Starts a flow at our API: the IdP authorization URL and the flow cookie. */
export async function begin(h: Harness, provider: string, returnTo = "/dashboard") {
  const r = await h.call("GET", `/api/v1/auth/sso/${provider}?return_to=${encodeURIComponent(returnTo)}`);
  if (r.status !== 302) throw new Error(`begin: ${r.status} ${JSON.stringify(r.body)}`);
  const setCookie = r.headers.get("set-cookie") ?? "";
  const cookie = setCookie.split(";")[0] as string;
  return { authUrl: new URL(r.headers.get("location") as string), cookie, setCookie };
}

/** Calls our callback with what the IdP redirected to. */
export function callback(h: Harness, back: URL, cookie: string | null) {
  return h.call("GET", `${back.pathname}${back.search}`, cookie ? { headers: { cookie } } : {});
}

/** The whole flow up to the one-time code; `tamper` may edit the authorization URL first. */
export async function ssoLogin(
  h: Harness,
  idp: TestIdp,
  provider: string,
  tamper: (u: URL) => void = () => {},
) {
  const b = await begin(h, provider);
  tamper(b.authUrl);
  const back = await authorizeAtIdp(idp, b.authUrl.href);
  return { ...b, back, res: await callback(h, back, b.cookie) };
}

export function codeFrom(location: string | null): string {
  const m = /#sso_code=([^&]+)/.exec(location ?? "");
  if (!m?.[1]) throw new Error(`no sso_code in ${location}`);
  return decodeURIComponent(m[1]);
}
