/**
 * POST /api/graphql {query, variables, operationName}. The caller must be signed in (401 like any REST route
 * otherwise); each field then runs the REST route that owns it through an in-process copy of the routes
 * (schema.ts), forwarding Authorization and X-Tenant-ID. Documents are bounded in size, tokens and depth.
 */
import { Elysia, t } from "elysia";
import { GraphQLError, graphql, specifiedRules, type ValidationRule } from "graphql";
import { createHttpApp } from "../../app/http.ts";
import { Registry } from "../../observability/metrics.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { resourceRoutes } from "../routes/index.ts";
import { RestError, rootValue, schema } from "./schema.ts";

const MAX_DEPTH = 8;
/**
 * REST calls one document may make. Each field runs a route, and one request passes the rate limit once:
 * without a bound, aliases and nested lists (500 agents × their metrics) made one request as costly as
 * thousands. 200 covers a page of 50 agents with their charts, logs and inventory.
 */
export const MAX_REST_CALLS = 200;

/** Refuses documents nested deeper than MAX_DEPTH selection sets (cheap protection against abuse). */
const depthLimit: ValidationRule = (ctx) => {
  let depth = 0;
  return {
    SelectionSet: {
      enter() {
        depth++;
        if (depth > MAX_DEPTH)
          ctx.reportError(new GraphQLError(`the query is nested deeper than ${MAX_DEPTH} levels`));
      },
      leave() {
        depth--;
      },
    },
  };
};

export function graphqlRoutes(deps: ApiDeps) {
  // the REST routes once more, for in-process calls: their own metrics registry (no duplicate series), the
  // same error envelope; no edge plugin (the outer request already passed CORS, the rate limit and body limit)
  const inner = createHttpApp({ log: deps.log, metrics: new Registry(), notReady: () => [] }).use(
    // reachable only in-process: X-Forwarded-For (set below from the outer request) is the real client
    resourceRoutes({
      ...deps,
      metrics: new Registry(),
      config: { ...deps.config, api: { ...deps.config.api, trust_proxy: true } },
    }),
  );

  return new Elysia({ name: "api/graphql" }).use(guardPlugin(deps)).post(
    "/api/graphql",
    async ({ body, request, req }) => {
      const forward: Record<string, string> = {
        "content-type": "application/json",
        "x-forwarded-for": req.ip,
      };
      for (const h of ["authorization", "x-api-key", "x-tenant-id", "user-agent"]) {
        const v = request.headers.get(h);
        if (v) forward[h] = v;
      }
      let calls = 0;
      const rest = async (method: string, path: string, payload?: unknown) => {
        if (++calls > MAX_REST_CALLS) {
          throw new RestError(
            `the query reads more than ${MAX_REST_CALLS} resources; ask for fewer items (limit) or split it into several queries`,
            { extensions: { code: "TOO_COMPLEX", status: 422 } },
          );
        }
        const res = await inner.handle(
          new Request(`http://graphql.internal${path}`, {
            method,
            headers: forward,
            ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
          }),
        );
        const text = await res.text();
        const json = text ? JSON.parse(text) : null;
        if (res.status >= 400) {
          throw new RestError(json?.error ?? `HTTP ${res.status}`, {
            extensions: { code: json?.errorType ?? "ERROR", status: res.status, details: json?.details },
          });
        }
        return json;
      };
      return graphql({
        schema,
        source: body.query,
        rootValue: rootValue(rest),
        variableValues: body.variables ?? undefined,
        operationName: body.operationName ?? undefined,
        maxTokens: 5000,
        rules: [...specifiedRules, depthLimit],
      });
    },
    {
      auth: { role: "viewer", tenant: false },
      body: t.Object(
        {
          query: t.String({ minLength: 1, maxLength: 20_000 }),
          variables: t.Optional(t.Nullable(t.Record(t.String(), t.Unknown()))),
          operationName: t.Optional(t.Nullable(t.String({ maxLength: 200 }))),
        },
        { additionalProperties: false },
      ),
      detail: {
        summary: "GraphQL over the same resources, auth and tenant scoping as /api/v1",
        tags: ["graphql"],
      },
    },
  );
}
