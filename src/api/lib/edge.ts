/**
 * What every /api request meets before routing: CORS (origins from api.cors, `*.example.com` wildcards), the
 * rate limit (api.rate_limiting, per X-Tenant-ID + client address, shared through Redis when configured), and
 * the body limit (api.max_body_bytes, 413 — counted while reading, so a chunked body cannot get around it).
 */
import { Elysia } from "elysia";
import { CollectorError } from "../../lib/errors.ts";
import { requestIdOf } from "../../lib/request-id.ts";
import { withAdmin } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { clientIp, isUuid } from "../principal.ts";

const envelope = (
  status: number,
  errorType: string,
  error: string,
  headers: Record<string, string> = {},
  details?: unknown,
) =>
  new Response(JSON.stringify({ status: "error", errorType, error, ...(details ? { details } : {}) }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });

const NUL_MESSAGE = "contains a NUL character, which no text field can hold; remove it";

/** The path of the first string (or key) holding a NUL character in a parsed JSON body, else null. */
export function nulPath(value: unknown, path = "body"): string | null {
  if (typeof value === "string") return value.includes("\0") ? path : null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = nulPath(value[i], `${path}/${i}`);
      if (p) return p;
    }
    return null;
  }
  if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k.includes("\0")) return `${path}/${k.replaceAll("\0", "")}`;
      const p = nulPath(v, `${path}/${k}`);
      if (p) return p;
    }
  }
  return null;
}

export function originAllowed(origin: string, allowed: readonly string[]): boolean {
  return allowed.some((a) => {
    if (a === "*") return true;
    if (a === origin) return true;
    const m = /^(https?:\/\/)\*\.(.+)$/.exec(a);
    if (!m) return false;
    try {
      const u = new URL(origin);
      return `${u.protocol}//` === m[1] && u.hostname.endsWith(`.${m[2]?.split(":")[0]}`);
    } catch {
      return false;
    }
  });
}

const isApi = (path: string) => path.startsWith("/api/");

export function edgePlugin(deps: ApiDeps) {
  const { cors, rate_limiting: rl, max_body_bytes: maxBody } = deps.config.api;
  // credentials (cookies) only for origins named in the config, never for "*": any site at all must not send
  // requests with the browser's cookies (bearer tokens, which the API uses, need none)
  const credentialOrigins = cors.allowed_origins.filter((o) => o !== "*");
  const limited = deps.metrics.counter({
    name: "secumon_api_rate_limited_total",
    help: "API requests refused by the rate limit.",
  });
  const tooLarge = new WeakSet<Request>();
  const withNul = new WeakMap<Request, string>();
  const rateTenant = tenantOfRateKey(deps);
  return new Elysia({ name: "api/edge" })
    .onRequest(async ({ request, set, server }) => {
      const path = new URL(request.url).pathname;
      if (!isApi(path)) return;
      const origin = request.headers.get("origin");
      // every answer given here, before routing, carries a request id like the others
      const corsHeaders: Record<string, string> = { "x-request-id": requestIdOf(request) };
      if (origin && originAllowed(origin, cors.allowed_origins)) {
        corsHeaders["access-control-allow-origin"] = origin;
        if (originAllowed(origin, credentialOrigins))
          corsHeaders["access-control-allow-credentials"] = "true";
        corsHeaders.vary = "Origin";
        corsHeaders["access-control-expose-headers"] = "X-Request-Id, Retry-After";
        Object.assign(set.headers, corsHeaders);
      }
      if (request.method === "OPTIONS" && request.headers.get("access-control-request-method")) {
        const h: Record<string, string> = { ...corsHeaders };
        if (corsHeaders["access-control-allow-origin"]) {
          h["access-control-allow-methods"] = cors.allowed_methods.join(", ");
          h["access-control-allow-headers"] = cors.allowed_headers.join(", ");
          h["access-control-max-age"] = "600";
        }
        return new Response(null, { status: 204, headers: h });
      }
      // PostgreSQL text cannot hold NUL: one clear 422 here, for every route, instead of a failed statement
      if (request.url.includes("%00")) {
        const url = new URL(request.url);
        const bad = [...url.searchParams].find(([k, v]) => k.includes("\0") || v.includes("\0"));
        const path = bad ? `query/${bad[0].replaceAll("\0", "")}` : "path";
        return envelope(422, "BAD_REQUEST", `invalid ${path}: ${NUL_MESSAGE}`, corsHeaders, [
          { path, message: NUL_MESSAGE },
        ]);
      }
      const len = Number(request.headers.get("content-length") ?? "0");
      if (len > maxBody) {
        return envelope(
          413,
          "PAYLOAD_TOO_LARGE",
          `the request body is larger than ${maxBody} bytes (api.max_body_bytes)`,
          corsHeaders,
        );
      }
      if (rl.enabled) {
        const ip = clientIp(deps, request, server);
        const tenant = await rateTenant(request.headers.get("x-tenant-id"));
        const hit = await deps.store.hit(`rl:${tenant}:${ip}`, 60_000);
        if (hit.count > rl.requests_per_minute) {
          limited.inc();
          const retry = String(Math.max(1, Math.ceil(hit.resetMs / 1000)));
          return envelope(
            429,
            "RATE_LIMITED",
            `more than ${rl.requests_per_minute} requests per minute from this client; retry after ${retry} s`,
            { "retry-after": retry, ...corsHeaders },
          );
        }
      }
    })
    .onTransform({ as: "global" }, ({ request }) => {
      const nul = withNul.get(request);
      if (nul) {
        throw new CollectorError("BAD_REQUEST", `invalid ${nul}: ${NUL_MESSAGE}`, {
          status: 422,
          details: [{ path: nul, message: NUL_MESSAGE }],
        });
      }
      if (tooLarge.has(request)) {
        throw new CollectorError(
          "BAD_REQUEST",
          `the request body is larger than ${maxBody} bytes (api.max_body_bytes)`,
          {
            status: 413,
          },
        );
      }
    })
    .onParse({ as: "global" }, async ({ request }, contentType) => {
      if (!isApi(new URL(request.url).pathname) || !request.body) return;
      const bytes = await readCapped(request.body, maxBody);
      if (bytes === null) {
        tooLarge.add(request); // answered 413 in transform: an error thrown here would become a generic 400
        return {};
      }
      const text = new TextDecoder().decode(bytes);
      if (!contentType.startsWith("application/json")) return text === "" ? undefined : text;
      if (text.trim() === "") return undefined;
      const parsed: unknown = JSON.parse(text); // a syntax error becomes PARSE → 400
      if (/\\u0000/i.test(text)) {
        const at = nulPath(parsed);
        if (at) withNul.set(request, at); // answered 422 in transform, like an oversized body
      }
      return parsed;
    });
}

/**
 * The tenant part of a rate-limit key (per tenant + client address, as api.rate_limiting says): the
 * X-Tenant-ID header only when it names a tenant that exists, else "-". The header is read before anyone is
 * authenticated, so taken as sent, a client changing it on every request got a fresh bucket each time and was
 * never limited; now it has at most one bucket per existing tenant. The ids are re-read every 10 seconds.
 */
export function tenantOfRateKey(
  deps: ApiDeps,
  refreshMs = 10_000,
): (header: string | null) => Promise<string> {
  let ids = new Set<string>();
  let until = 0;
  let loading: Promise<void> | null = null;
  const load = () =>
    withAdmin(deps.sql, (tx) => tx<{ id: string }[]>`select id from tenants`).then((rows) => {
      ids = new Set(rows.map((r) => r.id));
      until = deps.now() + refreshMs;
    });
  return async (header) => {
    const id = header?.trim().toLowerCase();
    if (!id || !isUuid(id)) return "-";
    if (deps.now() >= until) {
      loading ??= load().finally(() => {
        loading = null;
      });
      // unreadable (database down): every such request shares the "-" bucket until it answers again
      await loading.catch(() => {});
    }
    return ids.has(id) ? id : "-";
  };
}

async function readCapped(body: ReadableStream<Uint8Array>, max: number): Promise<Uint8Array | null> {
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > max) {
      await reader.cancel().catch(() => {});
      return null;
    }
    parts.push(value);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
