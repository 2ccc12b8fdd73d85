/**
 * The HTTP server on api.port: /health, /ready and /metrics for every role set (so Kubernetes and the
 * appliance's watchdog can probe any instance), plus whatever routes the api role mounts.
 * Request ids: an incoming X-Request-Id is kept (when sane), otherwise one is generated; it is echoed back
 * and carried in every log line of the request.
 */
import { Elysia } from "elysia";
import { CollectorError, isCollectorError } from "../lib/errors.ts";
import { requestIdOf } from "../lib/request-id.ts";
import type { Logger } from "../observability/logger.ts";
import { METRICS_CONTENT_TYPE, type Registry } from "../observability/metrics.ts";

export interface HttpDeps {
  log: Logger;
  metrics: Registry;
  /** Reasons the collector is not ready; empty when it is. */
  notReady: () => string[];
}

export function createHttpApp(deps: HttpDeps) {
  const requests = deps.metrics.counter({
    name: "secumon_http_requests_total",
    help: "HTTP requests answered, by route and status code.",
    labelNames: ["method", "route", "status"],
  });
  const duration = deps.metrics.histogram({
    name: "secumon_http_request_duration_seconds",
    help: "Time to answer HTTP requests, by route.",
    labelNames: ["method", "route"],
  });
  const started = new WeakMap<Request, number>();

  // normalize: false — an unknown field in a body is an error (422), not silently dropped
  return new Elysia({ name: "collector/http", normalize: false })
    .derive({ as: "global" }, ({ request, set }) => {
      const requestId = requestIdOf(request);
      set.headers["x-request-id"] = requestId;
      started.set(request, performance.now());
      return { requestId, log: deps.log.child({ requestId }) };
    })
    .onAfterResponse({ as: "global" }, ({ request, route, set, requestId }) => {
      const t0 = started.get(request);
      const seconds = t0 === undefined ? 0 : (performance.now() - t0) / 1000;
      const status = typeof set.status === "number" ? set.status : 200;
      const r = route || "unmatched";
      requests.inc({ method: request.method, route: r, status });
      duration.observe({ method: request.method, route: r }, seconds);
      const quiet = r === "/health" || r === "/metrics" || r === "/ready";
      deps.log[quiet ? "debug" : "info"](
        { requestId, method: request.method, route: r, status, ms: Math.round(seconds * 1000) },
        "http request",
      );
    })
    .onError({ as: "global" }, ({ code, error, set, request }) => {
      if (isCollectorError(error)) {
        set.status = error.status;
        // a refusal that says when to come back says it in the standard header too (clients honour that one)
        const retry = (error.details as { retry_after_seconds?: unknown } | undefined)?.retry_after_seconds;
        if (typeof retry === "number" && retry > 0) set.headers["retry-after"] = String(retry);
        return {
          status: "error",
          errorType: error.code,
          error: error.message,
          ...(error.details === undefined ? {} : { details: error.details }),
        };
      }
      if (code === "NOT_FOUND") {
        set.status = 404;
        return {
          status: "error",
          errorType: "NOT_FOUND",
          error: `no route for ${request.method} ${new URL(request.url).pathname}`,
        };
      }
      if (code === "VALIDATION") {
        // 422 with every failing field: [{ path: "body/tags/0", message }]
        const v = error as unknown as { type?: string; all?: { path?: string; message?: string }[] };
        const where = v.type ?? "body";
        const details = (v.all ?? []).map((e) => ({
          path: `${where}${e.path ?? ""}`,
          message: e.message ?? "invalid value",
        }));
        set.status = 422;
        return {
          status: "error",
          errorType: "VALIDATION",
          error: `invalid ${where}: ${details.map((d) => `${d.path}: ${d.message}`).join("; ") || "does not match the schema"}`,
          details,
        };
      }
      if (code === "PARSE") {
        set.status = 400;
        return {
          status: "error",
          errorType: "BAD_REQUEST",
          error: "the request body could not be parsed: send valid JSON with Content-Type: application/json",
        };
      }
      const requestId = set.headers["x-request-id"]; // set by the derive above, unless it never ran
      deps.log.error(
        { requestId, method: request.method, err: String(error), stack: (error as Error).stack },
        "unhandled error in HTTP handler",
      );
      set.status = 500;
      return {
        status: "error",
        errorType: "INTERNAL",
        error: requestId
          ? `internal error; the collector's log has the details under requestId ${requestId}`
          : "internal error; the collector's log has the details",
      };
    })
    .get("/health", () => ({ status: "ok" }))
    .get("/ready", ({ set }) => {
      const reasons = deps.notReady();
      if (reasons.length) {
        set.status = 503;
        return { status: "not_ready", reasons };
      }
      return { status: "ready" };
    })
    .get("/metrics", ({ set }) => {
      set.headers["content-type"] = METRICS_CONTENT_TYPE;
      return deps.metrics.render();
    });
}

export type HttpApp = ReturnType<typeof createHttpApp>;

export async function listen(
  app: HttpApp,
  host: string,
  port: number,
): Promise<{ port: number; stop(): Promise<void> }> {
  try {
    app.listen({ hostname: host, port, reusePort: false });
  } catch (err) {
    if (/EADDRINUSE|in use/i.test(String(err)) || (err as { code?: string }).code === "EADDRINUSE") {
      throw new CollectorError(
        "PORT_IN_USE",
        `port ${host}:${port} (api.port) is already in use by another process. ` +
          "Stop that process, or choose another port with api.port in the config file or SECUMON_API__PORT.",
      );
    }
    throw err;
  }
  const server = app.server;
  if (!server?.port) throw new CollectorError("INTERNAL", `the HTTP server did not start on ${host}:${port}`);
  return { port: server.port, stop: async () => void (await app.stop(true)) };
}
