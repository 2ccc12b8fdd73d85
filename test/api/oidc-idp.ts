/**
 * A real OpenID Connect provider (the `oidc-provider` package) on a loopback port, for SSO tests. Its login
 * step is automated: the interaction endpoint signs in whoever `idp.user` names (no HTML form), and consent
 * is granted implicitly, so a test drives the whole authorization-code flow with plain fetch calls.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Provider from "oidc-provider";

export interface TestAccount {
  sub: string;
  email: string;
  /** Default true; null: the claim is left out (some providers never send it). */
  email_verified?: boolean | null;
  name?: string;
}

export interface TestIdp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Who signs in at the next authorization request. */
  user: TestAccount;
  close(): Promise<void>;
}

export async function startIdp(redirectUris: string[]): Promise<TestIdp> {
  const clientId = "secumon-test";
  const clientSecret = crypto.randomUUID() + crypto.randomUUID();
  const state: { user: TestAccount } = { user: { sub: "nobody", email: "nobody@idp.test" } };
  const accounts = new Map<string, TestAccount>();

  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: redirectUris,
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    cookies: { keys: [crypto.randomUUID()] },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      Grant: 600,
      IdToken: 600,
      Interaction: 600,
      Session: 600,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const a = accounts.get(sub);
      if (!a) return undefined;
      return {
        accountId: sub,
        async claims() {
          const verified = a.email_verified === null ? {} : { email_verified: a.email_verified ?? true };
          return { sub, email: a.email, ...verified, name: a.name ?? a.email };
        },
      };
    },
    async loadExistingGrant(ctx) {
      const o = ctx.oidc;
      const id = o.result?.consent?.grantId || o.session?.grantIdFor(o.client?.clientId ?? "");
      if (id) return o.provider.Grant.find(id);
      const grant = new o.provider.Grant({ clientId: o.client?.clientId, accountId: o.session?.accountId });
      grant.addOIDCScope("openid email profile");
      await grant.save();
      return grant;
    },
  });
  const handler = provider.callback();
  server.on("request", (req, res) => {
    if (req.url?.startsWith("/interaction/")) {
      accounts.set(state.user.sub, state.user);
      provider
        .interactionFinished(
          req,
          res,
          { login: { accountId: state.user.sub } },
          { mergeWithLastSubmission: false },
        )
        .catch((e: Error) => {
          res.statusCode = 500;
          res.end(e.message);
        });
      return;
    }
    handler(req, res);
  });

  return {
    issuer,
    clientId,
    clientSecret,
    get user() {
      return state.user;
    },
    set user(u: TestAccount) {
      state.user = u;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A tiny cookie jar for following the IdP's redirects with fetch. */
export class CookieJar {
  private readonly cookies = new Map<string, string>();
  store(res: Response): void {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair?.indexOf("=") ?? -1;
      if (!pair || i < 0) continue;
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(c) || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
}

/**
 * Follows the IdP's redirects from an authorization URL until one leaves the IdP (to our callback), and
 * returns that URL: `…/callback?code=…&state=…` (or `error=…`).
 */
export async function authorizeAtIdp(idp: TestIdp, authorizationUrl: string): Promise<URL> {
  const jar = new CookieJar();
  let url = new URL(authorizationUrl);
  for (let hop = 0; hop < 10; hop++) {
    if (!url.href.startsWith(idp.issuer)) return url;
    const res = await fetch(url, { redirect: "manual", headers: { cookie: jar.header() } });
    jar.store(res);
    const loc = res.headers.get("location");
    if (res.status < 300 || res.status >= 400 || !loc) {
      throw new Error(`IdP answered ${res.status} at ${url.pathname}: ${(await res.text()).slice(0, 300)}`);
    }
    url = new URL(loc, url);
  }
  throw new Error("too many redirects at the IdP");
}
