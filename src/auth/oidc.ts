/**
 * OpenID Connect relying party (openid-client 6): the authorization-code flow with PKCE (S256), state and
 * nonce. The per-flow secrets (state, nonce, code verifier, where to return) never leave the server in clear:
 * they travel in a short-lived cookie sealed with the keyring (AES-256-GCM, bound to the provider), so any
 * API instance can finish a flow another one started, and a forged or altered cookie does not open.
 */
import * as oc from "openid-client";
import { CollectorError } from "../lib/errors.ts";
import type { Keyring } from "../security/keyring.ts";

export interface OidcProviderConfig {
  /** Route segment and users.sso_provider value: `jumpcloud`, `oidc`. */
  id: string;
  displayName: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
  scopes: string;
  /** Absolute callback URL registered at the provider. */
  redirectUri: string;
}

export interface FlowState {
  state: string;
  nonce: string;
  verifier: string;
  returnTo: string;
  /** Milliseconds since the epoch. */
  expires: number;
}

export interface OidcIdentity {
  sub: string;
  email: string | null;
  emailVerified: boolean | null;
  name: string | null;
}

export const FLOW_TTL_MS = 10 * 60_000;
const flowContext = (provider: string) => `api.sso_flow:${provider}`;

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

const unavailable = (p: OidcProviderConfig, e: unknown) =>
  new CollectorError(
    "DEPENDENCY_MISSING",
    `cannot read the OpenID configuration of ${p.displayName} at ${p.issuer} (${(e as Error).message}); ` +
      "check the issuer URL in the config and that the collector can reach it, then try again",
    { status: 503, cause: e },
  );

export const refused = (why: string) =>
  new CollectorError("UNAUTHENTICATED", `single sign-on failed: ${why}; start the sign-in again`);

/** openid-client wraps the precise reason (`unexpected ID Token "nonce" claim value`) in `cause`. */
function explain(e: unknown): string {
  const m = (e as Error).message;
  const c = (e as { cause?: unknown }).cause;
  return c instanceof Error && c.message && c.message !== m ? `${m}: ${c.message}` : m;
}

export class OidcClient {
  private config: Promise<oc.Configuration> | null = null;

  constructor(
    readonly provider: OidcProviderConfig,
    private readonly keyring: Keyring,
    private readonly now: () => number = Date.now,
  ) {
    let u: URL;
    try {
      u = new URL(provider.issuer);
    } catch {
      throw new CollectorError(
        "CONFIG_INVALID",
        `the ${provider.id} issuer "${provider.issuer}" is not a URL`,
      );
    }
    if (u.protocol !== "https:" && !(u.protocol === "http:" && LOOPBACK.has(u.hostname))) {
      throw new CollectorError(
        "CONFIG_INVALID",
        `the ${provider.id} issuer must be an https:// URL (plain http is accepted for loopback addresses only)`,
      );
    }
  }

  /** Discovery, once; a failure is not cached, so the next sign-in retries. */
  private configuration(): Promise<oc.Configuration> {
    if (!this.config) {
      const p = this.provider;
      const insecure = new URL(p.issuer).protocol === "http:";
      this.config = oc
        .discovery(new URL(p.issuer), p.clientId, p.clientSecret, undefined, {
          timeout: 10,
          ...(insecure ? { execute: [oc.allowInsecureRequests] } : {}),
        })
        .catch((e) => {
          this.config = null;
          throw unavailable(p, e);
        });
    }
    return this.config;
  }

  /** Starts a flow: the provider's authorization URL and the sealed cookie value that remembers the flow. */
  async begin(returnTo: string): Promise<{ url: URL; cookie: string }> {
    const config = await this.configuration();
    const flow: FlowState = {
      state: oc.randomState(),
      nonce: oc.randomNonce(),
      verifier: oc.randomPKCECodeVerifier(),
      returnTo,
      expires: this.now() + FLOW_TTL_MS,
    };
    const url = oc.buildAuthorizationUrl(config, {
      redirect_uri: this.provider.redirectUri,
      scope: this.provider.scopes,
      response_type: "code",
      code_challenge: await oc.calculatePKCECodeChallenge(flow.verifier),
      code_challenge_method: "S256",
      state: flow.state,
      nonce: flow.nonce,
    });
    return { url, cookie: this.sealFlow(flow) };
  }

  sealFlow(flow: FlowState): string {
    return Buffer.from(this.keyring.seal(JSON.stringify(flow), flowContext(this.provider.id))).toString(
      "base64url",
    );
  }

  openFlow(cookie: string | null): FlowState {
    if (!cookie) throw refused("this browser holds no sign-in in progress (cookies blocked or expired)");
    let f: FlowState;
    try {
      f = JSON.parse(this.keyring.openText(Buffer.from(cookie, "base64url"), flowContext(this.provider.id)));
    } catch {
      throw refused("the sign-in cookie is invalid");
    }
    if (typeof f?.state !== "string" || typeof f.nonce !== "string" || typeof f.verifier !== "string")
      throw refused("the sign-in cookie is invalid");
    if (!(f.expires > this.now())) throw refused("the sign-in took longer than 10 minutes");
    return f;
  }

  /**
   * Finishes a flow from the callback's query string: checks state, exchanges the code (PKCE), verifies the
   * ID token (signature, issuer, audience, expiry, nonce) and returns who signed in.
   */
  async finish(query: URLSearchParams, flow: FlowState): Promise<OidcIdentity> {
    const error = query.get("error");
    if (error) {
      const d = query.get("error_description");
      throw refused(`${this.provider.displayName} answered ${error}${d ? ` (${d.slice(0, 200)})` : ""}`);
    }
    if (query.get("state") !== flow.state)
      throw refused("the state parameter does not match this browser's sign-in");
    const config = await this.configuration();
    const current = new URL(this.provider.redirectUri);
    for (const [k, v] of query) current.searchParams.append(k, v);
    let tokens: Awaited<ReturnType<typeof oc.authorizationCodeGrant>>;
    try {
      tokens = await oc.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: flow.verifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      });
    } catch (e) {
      throw refused(`${this.provider.displayName}'s answer did not verify (${explain(e)})`);
    }
    const claims = tokens.claims();
    if (!claims?.sub) throw refused("the ID token names no subject");
    let info: Record<string, unknown> = claims;
    if (typeof claims.email !== "string" && tokens.access_token) {
      try {
        // the ID token may carry only `sub` (claims then come from the userinfo endpoint)
        info = { ...(await oc.fetchUserInfo(config, tokens.access_token, claims.sub)), ...claims };
      } catch (e) {
        throw refused(
          `cannot read the user's profile from ${this.provider.displayName} (${(e as Error).message})`,
        );
      }
    }
    return {
      sub: claims.sub,
      email: typeof info.email === "string" ? info.email : null,
      emailVerified: typeof info.email_verified === "boolean" ? info.email_verified : null,
      name: typeof info.name === "string" ? info.name : null,
    };
  }
}
