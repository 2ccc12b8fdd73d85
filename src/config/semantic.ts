/**
 * Checks the schema cannot express: fields required by a switch, listeners sharing a port, value ranges
 * across fields, the syntax of secret references. Runs on a document that passed the schema.
 */
import { parseSecretRef } from "./refs.ts";
import { type Config, isDuration, leaves, parseDuration, pointer, SECRET_PATHS } from "./schema.ts";

export function semanticProblems(c: Config): string[] {
  return [
    ...durations(c),
    ...requiredWhenEnabled(c),
    ...ports(c),
    ...urls(c),
    ...secretRefs(c),
    ...wireguard(c),
    ...order(c),
  ];
}

const get = (c: Config, path: readonly string[]): unknown =>
  path.reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], c);

function durations(c: Config): string[] {
  return leaves()
    .filter((l) => isDuration(l.schema) && l.schema["x-allow-zero"] !== true)
    .filter((l) => parseDuration(get(c, l.path) as string) === 0)
    .map((l) => `${pointer(l.path)}: must be longer than 0`);
}

function requiredWhenEnabled(c: Config): string[] {
  const n = c.alerter.notifications;
  const rules: [string, { enabled: boolean }, string[]][] = [
    ["/api/tls", c.api.tls, ["cert_file", "key_file"]],
    ["/api/auth/jumpcloud", c.api.auth.jumpcloud, ["client_id", "client_secret", "org_id"]],
    ["/alerter/notifications/email", n.email, ["smtp_host", "from"]],
    ["/alerter/notifications/slack", n.slack, ["webhook_url"]],
    ["/alerter/notifications/sms", n.sms, ["account_sid", "auth_token", "from"]],
    ["/uplink", c.uplink, ["url"]],
  ];
  return rules.flatMap(([at, section, keys]) =>
    section.enabled
      ? keys
          .filter((k) => (section as unknown as Record<string, string>)[k] === "")
          .map((k) => `${at}/${k}: required when ${at}/enabled is true`)
      : [],
  );
}

function ports(c: Config): string[] {
  const problems: string[] = [];
  if (c.nats.url === "" && c.nats.port === 4222) {
    problems.push(
      "/nats/port: 4222 is the system NATS of development machines; give the embedded nats-server its own port (default 14222, or 0 for any free port)",
    );
  }
  // TCP listeners of this process and its children; port 0 asks the kernel for a free one, so never collides.
  const listeners: [string, string, number][] = [
    ["/api/port", c.api.host, c.api.port],
    ["/gateway/grpc_port", c.gateway.host, c.gateway.grpc_port],
  ];
  if (c.nats.url === "") listeners.push(["/nats/port", c.nats.host, c.nats.port]);
  if (c.database.url === "")
    listeners.push(["/database/embedded/port", "127.0.0.1", c.database.embedded.port]);
  const wildcard = (h: string) => h === "0.0.0.0" || h === "::" || h === "";
  listeners.forEach(([path, host, port], i) => {
    const clash = listeners
      .slice(0, i)
      .find(([, h, p]) => p === port && port !== 0 && (h === host || wildcard(h) || wildcard(host)));
    if (clash)
      problems.push(`${path}: port ${port} is also used by ${clash[0]}; give each listener its own port`);
  });
  return problems;
}

function urls(c: Config): string[] {
  const checks: [string, string, string[], boolean][] = [
    ["/nats/url", c.nats.url, ["nats:", "tls:", "ws:", "wss:"], false],
    ["/loki/url", c.loki.url, ["http:", "https:"], false],
    ["/uplink/url", c.uplink.url, ["https:", "http:"], false],
    ["/secrets/ovh/endpoint", c.secrets.ovh.endpoint, ["https:"], false],
    // Secret fields: checked only when they hold a literal, and never echoed (they may carry a password).
    ["/database/url", c.database.url, ["postgres:", "postgresql:"], true],
    ["/redis/url", c.redis.url, ["redis:", "rediss:"], true],
  ];
  return checks.flatMap(([path, value, schemes, secret]) => {
    if (value === "" || (secret && parseSecretRef(value).kind !== "literal")) return [];
    let scheme: string | undefined;
    try {
      scheme = new URL(value).protocol;
    } catch {
      scheme = undefined;
    }
    if (scheme && schemes.includes(scheme)) return [];
    const want = schemes.map((s) => `${s}//`).join(" or ");
    return [
      `${path}: expected a ${want} URL, got ${secret ? "something else (value not shown)" : `"${value}"`}`,
    ];
  });
}

function secretRefs(c: Config): string[] {
  const problems: string[] = [];
  let usesOvh = false;
  for (const path of SECRET_PATHS) {
    const ref = parseSecretRef(get(c, path) as string);
    if (ref.kind === "invalid") problems.push(`${pointer(path)}: ${ref.problem}`);
    if (ref.kind === "ovh") usesOvh = true;
  }
  if (parseSecretRef(c.secrets.ovh.token).kind === "ovh") {
    problems.push("/secrets/ovh/token: cannot itself come from ovh://; use env:NAME or file:/path");
  }
  if (usesOvh) {
    for (const key of ["endpoint", "okms_id", "token"] as const) {
      if (c.secrets.ovh[key] === "")
        problems.push(`/secrets/ovh/${key}: required because a secret uses ovh://secrets/...`);
    }
  }
  return problems;
}

function wireguard(c: Config): string[] {
  const addr = cidr(c.wireguard.address);
  const pool = cidr(c.wireguard.pool);
  const problems: string[] = [];
  if (!addr) problems.push(`/wireguard/address: "${c.wireguard.address}" is not a valid IPv4 address/prefix`);
  if (!pool) problems.push(`/wireguard/pool: "${c.wireguard.pool}" is not a valid IPv4 network/prefix`);
  if (addr && pool && (addr.ip & pool.mask) >>> 0 !== (pool.ip & pool.mask) >>> 0) {
    problems.push(
      `/wireguard/address: ${c.wireguard.address} is outside /wireguard/pool ${c.wireguard.pool}`,
    );
  }
  if (!/^[a-zA-Z0-9_=+.-]{1,15}$/.test(c.wireguard.interface)) {
    problems.push(
      `/wireguard/interface: "${c.wireguard.interface}" is not a valid interface name (1-15 letters, digits, "_", "-", ".")`,
    );
  }
  const seen: { at: string; net: { ip: number; mask: number }; text: string }[] = [];
  if (pool) seen.push({ at: "/wireguard/pool", net: pool, text: c.wireguard.pool });
  const slugs = new Set<string>();
  c.wireguard.tenant_pools.forEach((entry, i) => {
    const at = `/wireguard/tenant_pools/${i}`;
    const [slug = "", text = ""] = entry.split("=");
    const net = cidr(text);
    if (!net || net.mask > 0xfffffffc) {
      problems.push(
        `${at}: "${text}" is not an IPv4 network of at least 4 addresses (prefix /30 or shorter)`,
      );
      return;
    }
    if (slugs.has(slug)) problems.push(`${at}: tenant "${slug}" is listed twice`);
    slugs.add(slug);
    const clash = seen.find((s) => {
      const m = (s.net.mask & net.mask) >>> 0;
      return (s.net.ip & m) >>> 0 === (net.ip & m) >>> 0;
    });
    if (clash)
      problems.push(`${at}: ${text} overlaps ${clash.at} ${clash.text}; tenant pools may not overlap`);
    seen.push({ at, net, text });
  });
  return problems;
}

function cidr(s: string): { ip: number; mask: number } | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(s);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits > 32) return undefined;
  const ip = octets.reduce((acc, o) => acc * 256 + o, 0);
  return { ip, mask: bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0 };
}

function order(c: Config): string[] {
  const pairs: [string, string, string, string, string][] = [
    [
      "/supervisor/restart_backoff_initial",
      c.supervisor.restart_backoff_initial,
      "/supervisor/restart_backoff_max",
      c.supervisor.restart_backoff_max,
      "shorten the first or raise the maximum",
    ],
    [
      "/api/auth/jwt_expiry",
      c.api.auth.jwt_expiry,
      "/api/auth/refresh_expiry",
      c.api.auth.refresh_expiry,
      "access tokens must expire before the refresh tokens that renew them",
    ],
  ];
  const problems = pairs
    .filter(([, a, , b]) => parseDuration(a) > parseDuration(b))
    .map(([pa, a, pb, b, hint]) => `${pa}: ${a} is longer than ${pb} (${b}); ${hint}`);
  const { flush_interval: flush, ack_wait: ackWait } = c.ingestion;
  if (parseDuration(flush) >= parseDuration(ackWait))
    problems.push(
      `/ingestion/flush_interval: ${flush} is not shorter than /ingestion/ack_wait (${ackWait}); batches waiting that long would be redelivered to another worker — shorten flush_interval (0s writes at once)`,
    );
  return problems;
}
