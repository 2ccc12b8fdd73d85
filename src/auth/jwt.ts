/**
 * Access tokens (JWT, HS256, jose). Short-lived; carry the user, tenant, role and session (refresh family) so
 * a request needs no token lookup. The user row is re-read at most every 5 s (src/api/principal.ts); a disabled
 * or deleted user, or a lowered role, takes effect at once through session revocation. A second kind, `mfa`, is the 5-minute
 * challenge between the password and the TOTP code; `setup` tokens are limited to MFA enrolment; `sso` is the
 * one-minute, one-time code a single-sign-on callback hands the web UI to exchange for a session.
 */
import { errors, jwtVerify, SignJWT } from "jose";
import { CollectorError } from "../lib/errors.ts";

export type TokenKind = "access" | "mfa" | "setup" | "sso";

export interface AccessClaims {
  sub: string;
  kind: TokenKind;
  /** Session: the refresh-token family (empty for mfa challenges). */
  sid: string;
  tid: string | null;
  role: string;
  /** Seconds since the epoch. */
  exp: number;
  /** Unique token id (one-time codes are remembered by it). */
  jti: string;
}

const ISSUER = "secumon-collector";
/** Verified access tokens remembered per signer (one entry per live session; cleared when full). */
const VERIFIED_MAX = 10_000;
const AUDIENCE = "secumon-api";

export interface JwtSigner {
  sign(c: Omit<AccessClaims, "exp" | "jti">, ttlSeconds: number): Promise<string>;
  verify(token: string, kind: TokenKind): Promise<AccessClaims>;
}

export function jwtSigner(key: Uint8Array, now: () => number = Date.now): JwtSigner {
  if (key.length < 32) {
    throw new CollectorError(
      "CONFIG_INVALID",
      "api.auth.jwt_secret must be at least 32 bytes: generate one with `openssl rand -base64 48`",
    );
  }
  // imported once: jose would import a raw key into WebCrypto on every sign and verify
  const hmac = crypto.subtle.importKey("raw", new Uint8Array(key), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
  // Access tokens already verified, by their exact text, until they expire: a client sends the same token
  // on every request for its lifetime, and the signature check (WebCrypto, a thread hop) was the largest
  // part of authenticating one. Only a token that passed every check gets here; its expiry is checked on
  // every hit; revocation never depended on this (sessions are checked in the counter store each time).
  const verified = new Map<string, AccessClaims>();
  return {
    async sign(c, ttlSeconds) {
      const iat = Math.floor(now() / 1000);
      return new SignJWT({ kind: c.kind, sid: c.sid, tid: c.tid, role: c.role })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setSubject(c.sub)
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt(iat)
        .setExpirationTime(iat + ttlSeconds)
        .setJti(crypto.randomUUID())
        .sign(await hmac);
    },
    async verify(token, kind) {
      const hit = kind === "access" ? verified.get(token) : undefined;
      if (hit && hit.exp * 1000 > now()) return hit;
      try {
        const { payload } = await jwtVerify(token, await hmac, {
          algorithms: ["HS256"],
          issuer: ISSUER,
          audience: AUDIENCE,
          currentDate: new Date(now()),
        });
        if (payload.kind !== kind || typeof payload.sub !== "string" || typeof payload.role !== "string") {
          throw new CollectorError("UNAUTHENTICATED", "this token cannot be used here; sign in again");
        }
        const claims: AccessClaims = Object.freeze({
          sub: payload.sub,
          kind,
          sid: typeof payload.sid === "string" ? payload.sid : "",
          tid: typeof payload.tid === "string" ? payload.tid : null,
          role: payload.role,
          exp: payload.exp ?? 0,
          jti: typeof payload.jti === "string" ? payload.jti : "",
        });
        if (kind === "access") {
          if (verified.size >= VERIFIED_MAX) verified.clear();
          verified.set(token, claims);
        }
        return claims;
      } catch (e) {
        if (e instanceof CollectorError) throw e;
        if (e instanceof errors.JWTExpired) {
          throw new CollectorError(
            "UNAUTHENTICATED",
            "the access token has expired; refresh it or sign in again",
          );
        }
        throw new CollectorError("UNAUTHENTICATED", "the access token is invalid; sign in again");
      }
    },
  };
}
