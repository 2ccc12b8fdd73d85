/**
 * The OpenAPI 3.1 document, generated from the routes themselves: path and query parameters, request bodies
 * (the TypeBox schemas Elysia validates with), summaries and tags (`detail`), and who may call each route
 * (the `auth` guard's spec: bearer token or API key, minimum role, `X-Tenant-ID` for superadmins).
 */
import { AUTH_SPEC, type AuthSpec } from "../guard.ts";

interface RouteLike {
  method: string;
  path: string;
  hooks?: Record<string, unknown>;
}

type Schema = Record<string, unknown>;

/** JSON Schema without TypeBox's symbol keys and with `$id`s removed (they would clash across routes). */
const plain = (s: unknown): Schema => JSON.parse(JSON.stringify(s, (k, v) => (k === "$id" ? undefined : v)));

function authOf(hooks: Record<string, unknown>): AuthSpec | null {
  const t = hooks.transform;
  const list = Array.isArray(t) ? t : t ? [t] : [];
  for (const x of list) {
    const fn = (x as { fn?: unknown }).fn ?? x;
    const spec = (fn as Record<symbol, AuthSpec | undefined>)[AUTH_SPEC];
    if (spec) return spec;
  }
  return null;
}

const ERROR = { $ref: "#/components/schemas/Error" };
const err = (description: string) => ({ description, content: { "application/json": { schema: ERROR } } });

export function openapiDocument(routes: RouteLike[], version: string): Schema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    if (!r.path.startsWith("/api/") || r.method === "OPTIONS" || r.path.startsWith("/api/docs")) continue;
    const hooks = r.hooks ?? {};
    const detail = (hooks.detail ?? {}) as { summary?: string; tags?: string[]; description?: string };
    const auth = authOf(hooks);
    const path = r.path.replace(/:([A-Za-z_]+)/g, "{$1}").replace(/\/$/, "") || "/";
    const parameters: unknown[] = [];
    const params = hooks.params as Schema | undefined;
    const names = [...r.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1] as string);
    for (const n of names) {
      const s = (params?.properties as Record<string, unknown> | undefined)?.[n] ?? { type: "string" };
      parameters.push({ name: n, in: "path", required: true, schema: plain(s) });
    }
    const query = hooks.query as Schema | undefined;
    const required = new Set((query?.required as string[] | undefined) ?? []);
    for (const [n, s] of Object.entries((query?.properties ?? {}) as Record<string, Schema>)) {
      const { description, ...schema } = plain(s);
      parameters.push({
        name: n,
        in: "query",
        required: required.has(n),
        schema,
        ...(description ? { description } : {}),
      });
    }
    if (auth && auth.tenant !== false) {
      parameters.push({
        name: "X-Tenant-ID",
        in: "header",
        required: false,
        description: "superadmins: the tenant acted on (tenant users and API keys act on their own)",
        schema: { type: "string", format: "uuid" },
      });
    }
    const op: Record<string, unknown> = {
      operationId: `${r.method.toLowerCase()}${path.replace(/[{}]/g, "").replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? "").toUpperCase())}`,
      summary: detail.summary ?? `${r.method} ${path}`,
      tags: detail.tags ?? ["other"],
      parameters,
      responses: {
        "2XX": { description: "success", content: { "application/json": { schema: {} } } },
        ...(hooks.body || parameters.length
          ? { "422": err("invalid input: `details` lists each field path") }
          : {}),
        ...(auth
          ? {
              "401": err("no, expired or invalid token"),
              "403": err(`needs the ${auth.role} role`),
              "404": err("not found (or another tenant's)"),
            }
          : {}),
        "429": err("rate limited (Retry-After)"),
      },
    };
    if (detail.description) op.description = detail.description;
    if (auth) {
      op.security = [{ bearer: [] }, { apiKey: [] }];
      op["x-required-role"] = auth.role;
    } else op.security = [];
    if (hooks.body) {
      op.requestBody = { required: true, content: { "application/json": { schema: plain(hooks.body) } } };
    }
    paths[path] ??= {};
    (paths[path] as Record<string, unknown>)[r.method.toLowerCase()] = op;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "SecuMon Collector API",
      version,
      description:
        "REST API of the collector. Sign in with POST /api/v1/auth/login, then send `Authorization: Bearer <access_token>` " +
        '(or an API key). Lists answer {data, pagination: {limit, offset, total}}; errors answer {status: "error", errorType, error, details?}.',
    },
    paths: Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b))),
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
        apiKey: { type: "apiKey", in: "header", name: "X-API-Key" },
      },
      schemas: {
        Error: {
          type: "object",
          required: ["status", "errorType", "error"],
          properties: {
            status: { const: "error" },
            errorType: { type: "string" },
            error: { type: "string", description: "what went wrong and what to do next" },
            details: { description: "for 422: [{path, message}]" },
          },
        },
      },
    },
  };
}
