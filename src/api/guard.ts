/**
 * The `auth` macro every protected route declares: `{ auth: "operator" }` (tenant-scoped, at least operator)
 * or `{ auth: { role: "superadmin", tenant: false } }` (platform route). Authentication runs in `transform`,
 * before body validation, so an anonymous caller learns nothing about a route's schema; the route then gets
 * `req`: principal, tenant, client address and user agent.
 */
import { Elysia } from "elysia";
import { CollectorError } from "../lib/errors.ts";
import type { ApiDeps, Role } from "./deps.ts";
import { forbidden } from "./lib/http-errors.ts";
import { authenticate, clientIp, type Principal, resolveTenant } from "./principal.ts";

export interface AuthSpec {
  role: Role;
  /** Resolve the tenant the request acts on (default true). */
  tenant?: boolean;
  /** Accept a `setup` token (MFA enrolment only). */
  restricted?: boolean;
}

/** Property of a guarded route's transform hook holding its AuthSpec. */
export const AUTH_SPEC = Symbol.for("secumon.api.auth");

export interface RequestInfo {
  principal: Principal;
  /** The tenant acted on ("" on platform routes). */
  tenantId: string;
  ip: string;
  userAgent: string | null;
}

type Server = { requestIP(r: Request): { address: string } | null } | null;

export function guardPlugin(deps: ApiDeps) {
  const resolved = new WeakMap<Request, RequestInfo>();
  return new Elysia({ name: "api/guard" }).macro({
    auth: (spec: Role | AuthSpec) => {
      const s: AuthSpec = typeof spec === "string" ? { role: spec } : spec;
      const transform = async ({ request, server }: { request: Request; server: Server }) => {
        const principal = await authenticate(deps, request.headers, s.restricted === true);
        if (principal.restricted && !s.restricted) {
          throw new CollectorError(
            "FORBIDDEN",
            "your tenant requires multi-factor authentication: enrol it (POST /api/v1/auth/mfa/enroll) first",
          );
        }
        if (!roleOk(principal.role, s.role)) throw forbidden(s.role);
        const tenantId =
          s.tenant === false ? "" : await resolveTenant(deps, principal, request.headers.get("x-tenant-id"));
        let ip: string | undefined;
        resolved.set(request, {
          principal,
          tenantId,
          // looked up only by the routes that record it (audit), not on every read
          get ip() {
            ip ??= clientIp(deps, request, server);
            return ip;
          },
          userAgent: request.headers.get("user-agent")?.slice(0, 512) ?? null,
        });
      };
      // the OpenAPI generator (src/api/openapi) reads the route's requirements from here
      Object.assign(transform, { [AUTH_SPEC]: s });
      return {
        transform,
        resolve({ request }: { request: Request }) {
          return { req: resolved.get(request) as RequestInfo };
        },
      };
    },
  });
}

const ORDER: Role[] = ["viewer", "operator", "admin", "superadmin"];
const roleOk = (have: Role, need: Role) => ORDER.indexOf(have) >= ORDER.indexOf(need);
