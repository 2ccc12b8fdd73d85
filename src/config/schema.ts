/**
 * The collector's configuration: one YAML document, one TypeBox schema.
 *
 * Every key has a default, so an empty file (or no file) is a working single-node configuration. In the schema
 * every property is *required with a default*: the loader applies the defaults before validating, so operators
 * may leave anything out, while code reading a `Config` never sees `undefined`.
 *
 * Custom schema markers (plain JSON-schema extension keywords, kept by TypeBox):
 * - `x-secret`: the value may be a secret reference (`env:NAME`, `file:/path`, `ovh://secrets/PATH`) or a
 *   literal; it is resolved at start and redacted when printed. See `Secret()`.
 * - `x-duration`: a duration string such as `30s`; see `parseDuration()`.
 * - `x-port`: a TCP/UDP port, 0..65535 (0 = pick a free port where the listener supports it).
 * - `x-expected`: wording for the error message when the value does not fit.
 */
import { type Static, type TLiteral, type TSchema, type TUnion, Type } from "@sinclair/typebox";

export const SECRET_MARK = "x-secret";
export const DURATION_MARK = "x-duration";
const DURATION_PATTERN = "^\\d+(ms|s|m|h|d)$";

/** A string field that may hold a secret or a secret reference. */
export function Secret(description: string) {
  return Type.String({ default: "", description, [SECRET_MARK]: true });
}

export const isSecret = (s: TSchema): boolean => s[SECRET_MARK] === true;
export const isDuration = (s: TSchema): boolean => s[DURATION_MARK] === true;

/** A duration such as `500ms`, `30s`, `5m`, `72h`, `30d`. `allowZero` lets `0s` mean "off". */
function Duration(def: string, description: string, opts: { allowZero?: boolean } = {}) {
  return Type.String({
    default: def,
    description,
    pattern: DURATION_PATTERN,
    [DURATION_MARK]: true,
    "x-allow-zero": opts.allowZero === true,
  });
}

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Milliseconds in a duration string (`"30s"` → 30000). Throws on anything else: validate first. */
export function parseDuration(s: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(s);
  if (!m)
    throw new RangeError(`invalid duration "${s}": expected a whole number followed by ms, s, m, h or d`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

const Str = (def: string, description: string) => Type.String({ default: def, description });
const Bool = (def: boolean, description: string) => Type.Boolean({ default: def, description });
const Int = (def: number, description: string, minimum = 0, maximum?: number) =>
  Type.Integer({ default: def, description, minimum, ...(maximum === undefined ? {} : { maximum }) });
const Port = (def: number, description: string) =>
  Type.Integer({ default: def, description, minimum: 0, maximum: 65535, "x-port": true });
const Strings = (def: string[], description: string) =>
  Type.Array(Type.String(), { default: def, description });

type LiteralUnion<T extends readonly string[]> = TUnion<{ -readonly [K in keyof T]: TLiteral<T[K]> }>;
function OneOf<const T extends readonly string[]>(values: T, def: T[number], description: string) {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    { default: def, description },
  ) as unknown as LiteralUnion<T>;
}

function Section<P extends Record<string, TSchema>>(description: string, properties: P) {
  return Type.Object(properties, { additionalProperties: false, default: {}, description });
}

export const ROLES = [
  "gateway",
  "ingestion",
  "alerter",
  "api",
  "wgmanager",
  "uplink",
  "maintenance",
] as const;
export type Role = (typeof ROLES)[number];
const DEFAULT_ROLES = ROLES.filter((r) => r !== "uplink");

const MiB = 1024 * 1024;
const IPV4_CIDR = "^(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})/(\\d{1,2})$";
const Cidr = (def: string, description: string) =>
  Type.String({
    default: def,
    description,
    pattern: IPV4_CIDR,
    "x-expected": 'an IPv4 address with a prefix length, such as "10.200.0.1/16"',
  });

const api = Section("HTTP API, auth and the embedded web UI (role `api`).", {
  host: Str("127.0.0.1", "Address the HTTP API listens on. `0.0.0.0` to listen on every interface."),
  port: Port(8080, "HTTP API port. 0 = any free port (tests)."),
  tls: Section("Serve the API over HTTPS.", {
    enabled: Bool(false, "Serve HTTPS instead of HTTP."),
    cert_file: Str("", "PEM certificate (chain) file; required when `enabled`."),
    key_file: Str("", "PEM private key file; required when `enabled`."),
  }),
  cors: Section("Cross-origin requests from browsers.", {
    allowed_origins: Strings(
      [],
      "Origins allowed to call the API; `*.example.com` wildcards allowed. Empty = same origin only.",
    ),
    allowed_methods: Strings(["GET", "POST", "PUT", "DELETE", "PATCH"], "Methods allowed cross-origin."),
    allowed_headers: Strings(
      ["Authorization", "Content-Type", "X-Tenant-ID"],
      "Request headers allowed cross-origin.",
    ),
  }),
  rate_limiting: Section("Per-client request rate limit.", {
    enabled: Bool(true, "Limit requests per client."),
    requests_per_minute: Int(600, "Requests allowed per client (tenant + IP) per minute.", 1),
  }),
  public_url: Str(
    "",
    "Base URL browsers reach the API at (`https://collector.example.com`); used for SSO redirects. Empty = `http://<host>:<port>`.",
  ),
  max_body_bytes: Int(1024 * 1024, "Largest request body accepted, in bytes (larger: 413).", 1024),
  trust_proxy: Bool(
    false,
    "Take the client address from X-Forwarded-For (only behind one reverse proxy that appends to it): its last entry, the one the proxy added, is what rate limits, sign-in blocks and the audit log use.",
  ),
  auth: Section("User authentication.", {
    jwt_secret: Secret(
      "HMAC key signing access tokens. Empty = a random key generated once and kept under `data_dir`.",
    ),
    jwt_expiry: Duration("15m", "Lifetime of an access token."),
    refresh_expiry: Duration("168h", "Lifetime of a refresh token."),
    lockout: Section("Back-off after failed sign-ins.", {
      max_failures: Int(
        5,
        "Failed sign-ins in a row before an account is locked. Also: wrong answers within `duration` to the checks a signed-in user repeats (current password to change it; password and code to turn MFA off) before those answer 429 until the window ends.",
        1,
      ),
      duration: Duration(
        "15m",
        "How long an account stays locked (doubles with each further lock, up to 24h).",
      ),
      ip_max_failures: Int(30, "Failed sign-ins allowed from one IP address per `duration`.", 1),
    }),
    mfa: Section("TOTP multi-factor authentication.", {
      enabled: Bool(true, "Let users enrol TOTP and require it at login once enrolled."),
      issuer: Str("SecuMon", "Issuer name shown in authenticator apps."),
    }),
    jumpcloud: Section("Single sign-on through JumpCloud (OIDC).", {
      enabled: Bool(false, "Offer JumpCloud sign-in."),
      issuer: Str("https://oauth.id.jumpcloud.com/", "OIDC issuer URL."),
      client_id: Secret("OIDC client id; required when `enabled`."),
      client_secret: Secret("OIDC client secret; required when `enabled`."),
      org_id: Str("", "JumpCloud organisation id; required when `enabled`."),
      tenant: Str(
        "",
        "Slug of the tenant new single-sign-on users are created in; empty = link existing users only.",
      ),
      default_role: OneOf(
        ["viewer", "operator", "admin"] as const,
        "viewer",
        "Role of users created at first sign-in.",
      ),
    }),
    oidc: Section("Single sign-on through any other OpenID Connect provider (Keycloak, Entra ID, Okta…).", {
      enabled: Bool(false, "Offer sign-in with this provider."),
      display_name: Str("Single sign-on", "Name of the provider on the sign-in page."),
      issuer: Str(
        "",
        "OIDC issuer URL (its /.well-known/openid-configuration is read); required when `enabled`.",
      ),
      client_id: Secret("OIDC client id; required when `enabled`."),
      client_secret: Secret("OIDC client secret; required when `enabled`."),
      scopes: Str(
        "openid email profile",
        "Scopes requested (space-separated; must include `openid` and `email`).",
      ),
      tenant: Str(
        "",
        "Slug of the tenant new single-sign-on users are created in; empty = link existing users only.",
      ),
      default_role: OneOf(
        ["viewer", "operator", "admin"] as const,
        "viewer",
        "Role of users created at first sign-in.",
      ),
    }),
  }),
});

const gateway = Section("gRPC endpoint for agents and probes (role `gateway`).", {
  host: Str("127.0.0.1", "Address the gRPC gateway listens on. `0.0.0.0` to accept agents from the network."),
  grpc_port: Port(9443, "gRPC (mTLS) port. 0 = any free port (tests)."),
  max_connections: Int(
    10000,
    "Concurrent open streams (SendMetrics, SendLogs, SendResults, SendSnmp, Connect) over all agents and probes; one more is refused RESOURCE_EXHAUSTED. Unary calls are bounded by the rate limit.",
    1,
  ),
  max_message_bytes: Int(4 * MiB, "Largest gRPC message accepted (compressed batch), in bytes.", 1),
  max_uncompressed_bytes: Int(64 * MiB, "Largest batch accepted once decompressed, in bytes.", 1),
  idle_timeout: Duration(
    "5m",
    "A connection with no call open for this long is closed (HTTP/2 GOAWAY; clients reconnect on their next call), so idle connections — from agents between unary calls, or from anyone without a certificate — do not pile up. An open stream counts as a call.",
  ),
  tls: Section(
    "Server certificate and the CA that signs agent certificates. Empty = generated under `data_dir`.",
    {
      cert_file: Str("", "PEM server certificate. Empty = issued by the collector CA for `server_names`."),
      key_file: Str("", "PEM server private key (with `cert_file`)."),
      ca_file: Str(
        "",
        "PEM CA certificate that signs agent client certificates (operator-supplied CA, with `ca_key_file`). Empty = the collector's own CA, created at first start (key sealed in the database).",
      ),
      ca_key_file: Str("", "PEM PKCS#8 private key of `ca_file`."),
      server_names: Strings(
        ["localhost", "127.0.0.1"],
        "DNS names and IP addresses put in the generated server certificate: what agents dial. When `host` is `0.0.0.0`/`::`, the machine's host name and interface addresses are added at each start.",
      ),
      client_cert_validity: Duration(
        "90d",
        "Lifetime of agent/probe client certificates (renewed over mTLS).",
      ),
      server_cert_validity: Duration("365d", "Lifetime of the generated server certificate."),
    },
  ),
  max_streams_per_source: Int(16, "Concurrent streams one agent or probe may hold open.", 1),
  enrollment_failures_per_minute: Int(
    120,
    "Failed enrollments (bad tokens, bad CSRs) tolerated per client IP per minute; beyond it Enroll answers RESOURCE_EXHAUSTED.",
    1,
  ),
  offline_after: Duration(
    "90s",
    "An agent or probe with no call or open stream for this long is marked offline.",
  ),
  last_seen_write_interval: Duration(
    "30s",
    "Last-seen timestamps are written to the database at most this often per agent (batched).",
  ),
  rate_limiting: Section("Per-agent rate limit.", {
    enabled: Bool(true, "Limit requests per agent."),
    requests_per_second: Int(1000, "Sustained requests per second per agent.", 1),
    burst: Int(5000, "Requests allowed in a burst above the sustained rate.", 1),
  }),
});

const nats = Section("NATS JetStream, the bus between roles.", {
  url: Str(
    "",
    "External NATS server (`nats://host:4222`). Empty = an embedded nats-server supervised by the collector.",
  ),
  host: Str("127.0.0.1", "Address the embedded nats-server listens on."),
  port: Port(
    14222,
    "Port of the embedded nats-server; not 4222, the system NATS of development machines. 0 = any free port.",
  ),
  sync_interval: Type.Union([Type.Literal("always"), Type.String({ pattern: DURATION_PATTERN })], {
    default: "always",
    description:
      "How often JetStream fsyncs. `always` = before acknowledging, so an acknowledged batch survives a power cut.",
    "x-expected": '"always" or a duration such as "2m"',
  }),
  max_store_bytes: Int(
    10 * 1024 * MiB,
    "Disk the TELEMETRY stream may use, in bytes; beyond it the gateway pushes back.",
    1,
  ),
  stream_max_age: Duration("72h", "Oldest message kept in the stream: how long an outage can be buffered."),
  telemetry_shards: Int(
    2,
    "TELEMETRY streams the gateway spreads sources over (`TELEMETRY`, `TELEMETRY_1`…). With `sync_interval: always` each stream fsyncs one message at a time; several fsync in parallel, for more batches/s (bench-gateway: 1,879/s with 1, 2,094/s with 2 on the same disk). 1 = a single stream. `max_store_bytes` is shared between them. Ingestion always reads every shard it finds.",
    1,
    16,
  ),
});

const database = Section("PostgreSQL (configuration and telemetry).", {
  url: Secret(
    "External PostgreSQL/TimescaleDB URL (`postgres://user:pass@host:5432/db`). Empty = embedded cluster under `data_dir`.",
  ),
  max_connections: Int(20, "Connection pool size.", 1),
  embedded: Section("The embedded cluster, used when `url` is empty.", {
    port: Port(
      15432,
      "Loopback port of the embedded postgres; not 5432, the system PostgreSQL of development machines.",
    ),
    bin_dir: Str(
      "",
      "Directory holding `initdb` and `postgres`. Empty = detected (/usr/lib/postgresql/<ver>/bin, PATH).",
    ),
  }),
});

const notifications = Section("Notification channels.", {
  email: Section("Email through SMTP.", {
    enabled: Bool(false, "Send email notifications."),
    smtp_host: Str("", "SMTP server; required when `enabled`."),
    smtp_port: Port(587, "SMTP port (587 = submission with STARTTLS, 465 = implicit TLS)."),
    from: Str("", "Sender address; required when `enabled`."),
    username: Str("", "SMTP user. Empty = no authentication."),
    password: Secret("SMTP password."),
    ca_file: Str("", "PEM CA certificate(s) to trust for the SMTP server's TLS. Empty = system CAs."),
  }),
  slack: Section("Slack incoming webhook.", {
    enabled: Bool(false, "Send Slack notifications."),
    webhook_url: Secret("Incoming-webhook URL; required when `enabled`."),
  }),
  webhook: Section("Generic signed webhooks (URLs are set per channel).", {
    enabled: Bool(true, "Allow webhook channels."),
    default_timeout: Duration("10s", "Timeout of one webhook delivery attempt."),
  }),
  sms: Section("SMS.", {
    enabled: Bool(false, "Send SMS notifications."),
    provider: OneOf(["twilio"] as const, "twilio", "SMS provider."),
    account_sid: Str("", "Twilio account SID; required when `enabled`."),
    auth_token: Secret("Twilio auth token; required when `enabled`."),
    from: Str("", "Sending phone number (E.164); required when `enabled`."),
    api_url: Str("https://api.twilio.com", "Base URL of Twilio's REST API."),
  }),
});

export const ConfigSchema = Type.Object(
  {
    data_dir: Type.String({
      default: "./data",
      minLength: 1,
      description:
        "Where the collector keeps its state (embedded NATS and PostgreSQL, keys). `/var/lib/secumon` on the appliance.",
    }),
    roles: Type.Array(OneOf(ROLES, "gateway", "A role."), {
      default: DEFAULT_ROLES,
      minItems: 1,
      uniqueItems: true,
      description: `Roles this process runs: ${ROLES.join(", ")}. Default: all but uplink.`,
      "x-item": "role",
    }),
    logging: Section("Logs of the collector itself (JSON lines on stdout).", {
      level: OneOf(
        ["trace", "debug", "info", "warn", "error"] as const,
        "info",
        "Least severe level written.",
      ),
      format: OneOf(["json"] as const, "json", "Log line format."),
    }),
    api,
    gateway,
    nats,
    database,
    redis: Section("Shared cache and counters; required when several API or gateway instances run.", {
      url: Secret("Redis URL (`redis://host:6379`). Empty = in memory (single node)."),
    }),
    loki: Section("Also push logs to Loki (they are always stored in PostgreSQL).", {
      url: Str("", "Loki base URL (`http://loki:3100`). Empty = no Loki."),
      batch_size: Int(100_000, "Bytes of log lines per push.", 1),
      batch_wait: Duration("1s", "Longest wait before pushing a partial batch."),
    }),
    ingestion: Section("JetStream consumers writing telemetry to PostgreSQL (role `ingestion`).", {
      concurrency: Int(4, "Batches processed in parallel.", 1),
      batch_size: Int(1000, "Messages fetched per pull.", 1),
      flush_interval: Duration(
        "0s",
        "Longest a writer waits for a full group (`batch_size` batches) before writing a partial one. 0 writes what is queued at once (lowest lag); a few hundred ms gives PostgreSQL fewer, larger transactions when many agents send small batches, for up to that much more lag. Must be shorter than `ack_wait`.",
        { allowZero: true },
      ),
      ack_wait: Duration(
        "60s",
        "How long JetStream waits for a batch to be acknowledged before redelivering it: a crashed worker's batches come back after this.",
      ),
      max_future_skew: Duration(
        "5m",
        "Samples timed further ahead of the collector's clock are refused (counted by reason).",
      ),
      max_log_line_bytes: Int(16384, "Longer log lines are truncated to this many bytes (UTF-8).", 256),
      dead_letter_max_age: Duration(
        "14d",
        "How long undecodable batches are kept in the TELEMETRY_DLQ stream.",
      ),
      decompression: Section("Batch decompression.", {
        algorithms: Type.Array(OneOf(["lz4", "zstd"] as const, "zstd", "An algorithm."), {
          default: ["lz4", "zstd"],
          uniqueItems: true,
          description: "Compression algorithms accepted from agents: lz4, zstd.",
        }),
        max_uncompressed_bytes: Int(
          64 * MiB,
          "Largest batch once decompressed, in bytes (decompression bombs).",
          1,
        ),
      }),
    }),
    alerter: Section("Rule evaluation and notifications (role `alerter`).", {
      evaluation_interval: Duration("30s", "How often alert rules are evaluated."),
      notification_cooldown: Duration(
        "5m",
        "Least time between two notifications of the same alert. 0s = none.",
        {
          allowZero: true,
        },
      ),
      notifications,
      external_url: Str(
        "",
        "Base URL of the web UI, for links in notifications (`https://secumon.example.com`). Empty = no links.",
      ),
      delivery: Section("Notification delivery workers (every alerter instance runs them).", {
        workers: Int(4, "Notifications sent in parallel per instance.", 1, 64),
        poll_interval: Duration(
          "1s",
          "Longest wait before looking for due notifications (new ones wake workers at once).",
        ),
        lease: Duration(
          "60s",
          "How long a claimed notification stays claimed; a crashed worker's claim expires after it.",
        ),
        max_attempts: Int(10, "Attempts before giving up on a notification.", 1),
        backoff_initial: Duration("2s", "Wait after the first failed attempt; doubles after each one."),
        backoff_max: Duration("10m", "Longest wait between two attempts."),
        give_up_after: Duration("24h", "Give up on a notification this old, whatever the attempts."),
      }),
    }),
    wireguard: Section("WireGuard tunnel for agents and probes (role `wgmanager`).", {
      enabled: Bool(false, "Run the WireGuard interface (needs CAP_NET_ADMIN)."),
      interface: Str("wg-secumon", "Interface name."),
      listen_port: Port(51820, "UDP port."),
      address: Cidr("10.200.0.1/16", "Address of the collector on the tunnel."),
      pool: Cidr(
        "10.200.0.0/16",
        "Network agent and probe addresses are allocated from; must contain `address`.",
      ),
      tenant_pools: Type.Array(
        Type.String({
          pattern: "^[a-z0-9-]+=(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})/(\\d{1,2})$",
          "x-expected": 'a tenant slug, "=" and an IPv4 network, such as "acme=10.201.0.0/24"',
        }),
        {
          default: [],
          description:
            "Tenants with a pool of their own, `slug=network` (`acme=10.201.0.0/24`); pools may not overlap each other or `pool`. " +
            "Other tenants allocate from `pool`. The list is authoritative: a tenant left out goes back to `pool` for new addresses.",
        },
      ),
      endpoint: Str(
        "",
        "Where peers reach the collector, `host` or `host:port` (port defaults to `listen_port`); put in every peer config. " +
          "Empty = peer configs carry no Endpoint until it is set.",
      ),
      mtu: Int(1420, "Interface MTU.", 1280, 9000),
      persistent_keepalive: Int(25, "Keepalive interval (seconds) put in peer configs; 0 = off.", 0, 65535),
      handshake_stale_after: Duration(
        "5m",
        "A peer with no handshake for this long is reported stale (event on NATS, `stale` in the API).",
      ),
      key_rotation_grace: Duration(
        "24h",
        "After a key rotation is requested, how long the old key keeps serving while the new one is announced to peers.",
      ),
      reconcile_interval: Duration(
        "60s",
        "Full comparison of the interface with the database (changes also apply live).",
      ),
      stats_interval: Duration("15s", "How often per-peer handshake and traffic counters are read."),
    }),
    retention: Section("How long telemetry is kept.", {
      raw: Duration("30d", "Raw samples."),
      rollup_5m: Duration("90d", "5-minute rollups."),
      rollup_1h: Duration("365d", "1-hour rollups."),
      logs: Duration("30d", "Log lines."),
    }),
    uplink: Section("Federation to an upstream (central) collector (role `uplink`).", {
      enabled: Bool(false, "Forward this site's telemetry upstream."),
      url: Str("", "Upstream gateway URL (`https://central.example.com:9443`); required when `enabled`."),
      enrollment_token: Secret("Token enrolling this collector upstream (used once)."),
      ca_file: Str("", "PEM CA to trust for the upstream gateway. Empty = system CAs."),
    }),
    security: Section("Keys protecting secrets at rest.", {
      encryption_key: Secret(
        "Master key (32 bytes, base64) sealing secrets stored in the database (AES-256-GCM). " +
          "Empty = generated once under `data_dir/secrets/`; set it when several instances share a database.",
      ),
    }),
    supervisor: Section("Child processes (nats-server, postgres, wireguard-go).", {
      stop_timeout: Duration("10s", "Wait after SIGTERM before SIGKILL."),
      restart_backoff_initial: Duration("500ms", "First delay before restarting a crashed child."),
      restart_backoff_max: Duration("30s", "Longest delay between restarts."),
    }),
    secrets: Section("Where `ovh://secrets/...` references are resolved.", {
      ovh: Section("OVHcloud Secret Manager (OKMS REST API).", {
        endpoint: Str("", "Regional OKMS endpoint, e.g. `https://eu-west-rbx.okms.ovh.net`."),
        okms_id: Str("", "OKMS domain id (a UUID)."),
        token: Secret("Personal access token (bearer), normally `env:NAME` or `file:/path`."),
        ca_file: Str("", "PEM CA to trust for the endpoint. Empty = system CAs."),
        timeout: Duration("10s", "Timeout of one request."),
      }),
    }),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;

type DeepPartial<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;
/** What `overrides` may carry (command-line flags): any subset of the document. */
export type ConfigOverrides = DeepPartial<Config>;

/** Child schemas of an object schema, or undefined for leaves. */
export function childrenOf(s: TSchema | undefined): Record<string, TSchema> | undefined {
  return s?.type === "object" && s.properties ? (s.properties as Record<string, TSchema>) : undefined;
}

/** The schema at `path` (keys from the root), or undefined if no such key exists. */
export function schemaAt(path: readonly string[]): TSchema | undefined {
  let s: TSchema | undefined = ConfigSchema;
  for (const key of path) {
    const kids = childrenOf(s);
    s = kids && Object.hasOwn(kids, key) ? kids[key] : undefined;
  }
  return s;
}

/** Every leaf (non-object) field: its path and schema, in document order. */
export function leaves(
  s: TSchema = ConfigSchema,
  path: string[] = [],
): { path: string[]; schema: TSchema }[] {
  const kids = childrenOf(s);
  if (!kids) return [{ path, schema: s }];
  return Object.entries(kids).flatMap(([k, v]) => leaves(v, [...path, k]));
}

/** Paths of every `Secret()` field. */
export const SECRET_PATHS: readonly string[][] = leaves()
  .filter((l) => isSecret(l.schema))
  .map((l) => l.path);

export const pointer = (path: readonly string[]): string => `/${path.join("/")}`;
