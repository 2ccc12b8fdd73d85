/**
 * The GraphQL schema (graphql-js, SDL) and its resolvers. Resolvers do not reimplement anything: each one is
 * a call to the REST route that owns the resource (`rest`), with the caller's own Authorization and
 * X-Tenant-ID, so authentication, roles, tenant scoping, validation (422 → error with field paths) and the
 * audit log are exactly those of /api/v1. REST errors become GraphQL errors whose `extensions` carry
 * `code` (NOT_FOUND, FORBIDDEN, VALIDATION…), `status` and `details`.
 */
import { buildSchema, GraphQLError } from "graphql";

export const SDL = /* GraphQL */ `
  "Any JSON value (objects of the REST API, filters, inputs)."
  scalar JSON

  type Pagination { limit: Int!, offset: Int!, total: Int! }

  type Agent {
    id: ID!
    name: String!
    hostname: String
    primary_ip: String
    "Plain addresses (10.0.0.5, no mask), in the order the agent reported them."
    ip_addresses: [String!]!
    "The agent's tunnel address, plain (10.200.0.5); null until WireGuard gave it one."
    wireguard_ip: String
    os: String
    os_version: String
    version: String
    status: String!
    last_seen: String
    tags: [String!]!
    config: JSON
    created_at: String
    "System metrics for a chart: columns time[], cpu_usage[]… (see GET /agents/:id/metrics)."
    metrics(from: String, to: String, resolution: String, metrics: String): JSON
    logs(from: String, to: String, q: String, level: String, limit: Int): JSON
    inventory: JSON
  }
  type AgentPage { data: [Agent!]!, pagination: Pagination! }

  type Target {
    id: ID!
    name: String!
    address: String!
    type: String!
    enabled: Boolean!
    tests: JSON
    tags: [String!]!
    probe_ids: [ID!]!
    results(from: String, to: String, success: Boolean, limit: Int): JSON
  }
  type TargetPage { data: [Target!]!, pagination: Pagination! }

  type Page { data: [JSON!]!, pagination: Pagination! }

  type Query {
    me: JSON
    tenant: JSON
    agents(status: String, tag: String, q: String, sort: String, limit: Int, offset: Int): AgentPage!
    agent(id: ID!): Agent
    probes(status: String, tag: String, q: String, limit: Int, offset: Int): Page!
    targets(type: String, tag: String, q: String, limit: Int, offset: Int): TargetPage!
    target(id: ID!): Target
    alerts(state: String, severity: String, limit: Int, offset: Int): Page!
    alertHistory(status: String, severity: String, from: String, to: String, limit: Int, offset: Int): Page!
    alertRules(severity: String, q: String, limit: Int, offset: Int): Page!
    alertRule(id: ID!): JSON
    silences(state: String, limit: Int, offset: Int): Page!
    notificationChannels(type: String, limit: Int, offset: Int): Page!
    snmpCredentials(limit: Int, offset: Int): Page!
    users(role: String, q: String, limit: Int, offset: Int): Page!
    auditLogs(action: String, resource_type: String, limit: Int, offset: Int): Page!
    "POST /metrics/query: {from, to, resolution, queries: [{metric, aggregation, agents, tags, group_by}]}"
    metricsQuery(input: JSON!): JSON
    inventoryPackages(name: String, q: String, version: String, limit: Int, offset: Int): Page!
    availability(of: String!, from: String, to: String): JSON
  }

  type Mutation {
    updateAgent(id: ID!, input: JSON!): Agent
    revokeAgent(id: ID!): Agent
    createTarget(input: JSON!): Target
    updateTarget(id: ID!, input: JSON!): Target
    deleteTarget(id: ID!): Boolean
    createAlertRule(input: JSON!): JSON
    updateAlertRule(id: ID!, input: JSON!): JSON
    deleteAlertRule(id: ID!): Boolean
    acknowledgeAlert(id: ID!, comment: String): JSON
    createSilence(input: JSON!): JSON
    expireSilence(id: ID!): Boolean
    testNotificationChannel(id: ID!, wait: Int): JSON
  }
`;

export const schema = buildSchema(SDL);

/** Calls a REST route as the GraphQL caller; resolves to its JSON body (null for 204). */
export type Rest = (method: string, path: string, body?: unknown) => Promise<unknown>;

export class RestError extends GraphQLError {}

type Args = Record<string, unknown>;
const qs = (a: Args) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(a)) if (v !== undefined && v !== null) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
};
const id = (a: Args) => encodeURIComponent(String(a.id));

function agentObject(rest: Rest, a: Record<string, unknown>) {
  const base = `/api/v1/agents/${encodeURIComponent(String(a.id))}`;
  return {
    ...a,
    metrics: (args: Args) => rest("GET", `${base}/metrics${qs(args)}`),
    logs: (args: Args) => rest("GET", `${base}/logs${qs(args)}`),
    inventory: () =>
      rest("GET", `${base}/inventory`).catch((e) =>
        e instanceof RestError && e.extensions.status === 404 ? null : Promise.reject(e),
      ),
  };
}
function targetObject(rest: Rest, t: Record<string, unknown>) {
  return {
    ...t,
    results: (args: Args) =>
      rest("GET", `/api/v1/targets/${encodeURIComponent(String(t.id))}/results${qs(args)}`),
  };
}
type PageT = { data: Record<string, unknown>[]; pagination: unknown };
const mapPage = (p: unknown, f: (x: Record<string, unknown>) => unknown) => ({
  ...(p as PageT),
  data: (p as PageT).data.map(f),
});
const orNull = <T>(p: Promise<T>) =>
  p.catch((e) => (e instanceof RestError && e.extensions.status === 404 ? null : Promise.reject(e)));
const done = (p: Promise<unknown>) => p.then(() => true);

export function rootValue(rest: Rest) {
  return {
    me: () => rest("GET", "/api/v1/auth/me"),
    tenant: () => rest("GET", "/api/v1/tenant"),
    agents: async (a: Args) =>
      mapPage(await rest("GET", `/api/v1/agents${qs(a)}`), (x) => agentObject(rest, x)),
    agent: async (a: Args) => {
      const r = await orNull(rest("GET", `/api/v1/agents/${id(a)}`));
      return r ? agentObject(rest, r as Record<string, unknown>) : null;
    },
    probes: (a: Args) => rest("GET", `/api/v1/probes${qs(a)}`),
    targets: async (a: Args) =>
      mapPage(await rest("GET", `/api/v1/targets${qs(a)}`), (x) => targetObject(rest, x)),
    target: async (a: Args) => {
      const r = await orNull(rest("GET", `/api/v1/targets/${id(a)}`));
      return r ? targetObject(rest, r as Record<string, unknown>) : null;
    },
    alerts: (a: Args) => rest("GET", `/api/v1/alerts${qs(a)}`),
    alertHistory: (a: Args) => rest("GET", `/api/v1/alerts/history${qs(a)}`),
    alertRules: (a: Args) => rest("GET", `/api/v1/alerts/rules${qs(a)}`),
    alertRule: (a: Args) => orNull(rest("GET", `/api/v1/alerts/rules/${id(a)}`)),
    silences: (a: Args) => rest("GET", `/api/v1/silences${qs(a)}`),
    notificationChannels: (a: Args) => rest("GET", `/api/v1/notification-channels${qs(a)}`),
    snmpCredentials: (a: Args) => rest("GET", `/api/v1/snmp-credentials${qs(a)}`),
    users: (a: Args) => rest("GET", `/api/v1/users${qs(a)}`),
    auditLogs: (a: Args) => rest("GET", `/api/v1/audit-logs${qs(a)}`),
    metricsQuery: (a: Args) => rest("POST", "/api/v1/metrics/query", a.input),
    inventoryPackages: (a: Args) => rest("GET", `/api/v1/inventory/packages${qs(a)}`),
    availability: ({ of, ...a }: Args) => {
      if (of !== "targets" && of !== "agents")
        throw new GraphQLError('`of` must be "targets" or "agents"', { extensions: { code: "VALIDATION" } });
      return rest("GET", `/api/v1/reports/availability/${of}${qs(a)}`);
    },

    updateAgent: async (a: Args) =>
      agentObject(rest, (await rest("PATCH", `/api/v1/agents/${id(a)}`, a.input)) as never),
    revokeAgent: async (a: Args) =>
      agentObject(rest, (await rest("DELETE", `/api/v1/agents/${id(a)}`)) as never),
    createTarget: async (a: Args) =>
      targetObject(rest, (await rest("POST", "/api/v1/targets", a.input)) as never),
    updateTarget: async (a: Args) =>
      targetObject(rest, (await rest("PATCH", `/api/v1/targets/${id(a)}`, a.input)) as never),
    deleteTarget: (a: Args) => done(rest("DELETE", `/api/v1/targets/${id(a)}`)),
    createAlertRule: (a: Args) => rest("POST", "/api/v1/alerts/rules", a.input),
    updateAlertRule: (a: Args) => rest("PATCH", `/api/v1/alerts/rules/${id(a)}`, a.input),
    deleteAlertRule: (a: Args) => done(rest("DELETE", `/api/v1/alerts/rules/${id(a)}`)),
    acknowledgeAlert: (a: Args) =>
      rest(
        "POST",
        `/api/v1/alerts/${id(a)}/acknowledge`,
        a.comment === undefined ? {} : { comment: a.comment },
      ),
    createSilence: (a: Args) => rest("POST", "/api/v1/silences", a.input),
    expireSilence: (a: Args) => done(rest("DELETE", `/api/v1/silences/${id(a)}`)),
    testNotificationChannel: (a: Args) =>
      rest(
        "POST",
        `/api/v1/notification-channels/${id(a)}/test`,
        a.wait === undefined ? {} : { wait: a.wait },
      ),
  };
}
