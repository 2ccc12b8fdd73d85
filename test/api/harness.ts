/**
 * An API on a fresh migrated database, driven in-process (app.handle), with a clock tests can move. Seeds
 * tenants and users directly in SQL (as the schema owner) so each test starts from a known state.
 */

import { apiPlugin } from "../../src/api/app.ts";
import type { ApiDeps } from "../../src/api/deps.ts";
import { type CounterStore, memoryStore } from "../../src/api/lib/store.ts";
import { createHttpApp } from "../../src/app/http.ts";
import { jwtSigner } from "../../src/auth/jwt.ts";
import { hashPassword } from "../../src/auth/passwords.ts";
import { loadConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { Registry } from "../../src/observability/metrics.ts";
import { createKeyring } from "../../src/security/keyring.ts";
import { migratedSql } from "../support/pg.ts";
import { tempDir } from "../support/tmp.ts";

export const PASSWORD = "correct horse battery staple";
let cachedHash: Promise<string> | null = null;
export const passwordHash = () => (cachedHash ??= hashPassword(PASSWORD));

export interface Harness {
  deps: ApiDeps;
  app: ReturnType<typeof createHttpApp>;
  clock: { t: number };
  call(
    method: string,
    path: string,
    opts?: CallOpts,
    // biome-ignore lint/suspicious/noExplicitAny: response bodies are arbitrary JSON
  ): Promise<{ status: number; body: any; headers: Headers }>;
}

export interface CallOpts {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
  raw?: string;
}

export async function harness(
  overrides: Record<string, unknown> = {},
  store?: CounterStore,
): Promise<Harness> {
  const { sql } = await migratedSql();
  const clock = { t: Date.now() };
  // loadConfig directly (not test/support/collector.ts): this file must not import every role
  const config: Config = loadConfig({
    env: {},
    overrides: { api: { port: 0, rate_limiting: { enabled: false }, ...overrides } },
  });
  const deps: ApiDeps = {
    config,
    sql,
    keyring: createKeyring(crypto.getRandomValues(new Uint8Array(32))),
    log: silentLogger(),
    metrics: new Registry(),
    store: store ?? memoryStore(() => clock.t),
    jwt: jwtSigner(crypto.getRandomValues(new Uint8Array(32)), () => clock.t),
    dataDir: tempDir("secumon-api-"),
    now: () => clock.t,
  };
  const app = createHttpApp({ log: silentLogger(), metrics: deps.metrics, notReady: () => [] });
  app.use(apiPlugin(deps));
  async function call(method: string, path: string, o: CallOpts = {}) {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    let body: string | undefined = o.raw;
    if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await app.handle(new Request(`http://localhost${path}`, { method, headers, body }));
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    // biome-ignore lint/suspicious/noExplicitAny: response bodies are arbitrary JSON, asserted field by field
    return { status: res.status, body: parsed as any, headers: res.headers };
  }
  return { deps, app, clock, call };
}

export async function seedTenant(
  h: Harness,
  slug: string,
  settings: Record<string, unknown> = {},
): Promise<string> {
  const [r] = await h.deps
    .sql`insert into tenants (name, slug, settings) values (${slug}, ${slug}, ${h.deps.sql.json(settings as never)}) returning id`;
  return r?.id as string;
}

export async function seedUser(
  h: Harness,
  email: string,
  role: string,
  tenantId: string | null,
): Promise<string> {
  const [r] = await h.deps.sql`
    insert into users (email, role, tenant_id, password_hash) values (${email}, ${role}, ${tenantId}, ${await passwordHash()})
    returning id`;
  return r?.id as string;
}

export async function login(h: Harness, email: string, password = PASSWORD) {
  const r = await h.call("POST", "/api/v1/auth/login", { body: { email, password } });
  if (r.status !== 200 || !r.body.access_token)
    throw new Error(`login ${email} failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as { access_token: string; refresh_token: string };
}
