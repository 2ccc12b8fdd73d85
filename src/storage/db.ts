/**
 * The PostgreSQL pool (postgres.js) and the two ways the application runs a transaction:
 *   - withTenant: as role secumon_app with `secumon.tenant_id` set — row-level security limits every statement
 *     to that tenant's rows (migrations/001_initial.sql explains the policies);
 *   - withAdmin: as role secumon_admin (BYPASSRLS) — superadmin screens, authentication lookups made before a
 *     tenant is known, maintenance jobs. Using it is a deliberate, greppable choice.
 * Statements run directly on the pool run as the login user (the schema owner), outside both.
 *
 * Types are postgres.js's defaults, kept on purpose: int8/bigint and numeric arrive as strings (a JS number
 * cannot hold every int8 — cast in SQL, `count(*)::int`, or convert where the range is known), timestamptz as
 * Date, json/jsonb parsed.
 */
import postgres from "postgres";
import { CollectorError } from "../lib/errors.ts";
import type { Logger } from "../observability/logger.ts";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

export interface ConnectOptions {
  /** Pool size (default 10). */
  max?: number;
  log: Logger;
  /** Seconds to wait for a connection to open (default 10). */
  connectTimeoutSeconds?: number;
}

const APP_ROLE = "secumon_app";
const ADMIN_ROLE = "secumon_admin";

/**
 * Opens a pool. Lazy: nothing connects until the first query, so an unreachable server surfaces there (use
 * `ping`, or any query through `mapDatabaseError`). Accepts libpq's `?host=/socket/dir` for a Unix socket,
 * which postgres.js itself does not.
 */
export function connect(url: string, opts: ConnectOptions): Sql {
  const { url: clean, path } = parseDatabaseUrl(url);
  const log = opts.log;
  return postgres(clean, {
    ...(path ? { path } : {}),
    max: opts.max ?? 10,
    connect_timeout: opts.connectTimeoutSeconds ?? 10,
    idle_timeout: 60, // idle connections close after a minute and reopen on demand
    connection: { application_name: "secumon-collector" },
    onnotice: (n) => log.debug({ notice: { severity: n.severity, code: n.code } }, `postgres: ${n.message}`),
  });
}

/** Checks that the database answers; throws DATABASE_UNAVAILABLE with what to check when it does not. */
export async function ping(sql: Sql): Promise<void> {
  try {
    await sql`select 1`;
  } catch (e) {
    throw mapDatabaseError(e, sql);
  }
}

/** 400 unless `tenantId` is a UUID (the tenant of withTenant and tenantQuery). */
function checkTenantId(tenantId: string): void {
  if (!UUID.test(tenantId))
    throw new CollectorError("BAD_REQUEST", `tenant id must be a UUID, got ${JSON.stringify(tenantId)}`);
}

/**
 * Runs `fn` in a transaction as secumon_app scoped to one tenant: `SET LOCAL ROLE secumon_app` and
 * `set_config('secumon.tenant_id', tenantId, true)` (sent as one statement, one round trip). Both end with the
 * transaction, so a pooled connection never carries a tenant into its next use.
 */
export function withTenant<T>(sql: Sql, tenantId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  try {
    checkTenantId(tenantId);
  } catch (e) {
    return Promise.reject(e);
  }
  return inRole(sql, APP_ROLE, tenantId, fn);
}

/** The one statement of a tenantQuery, returned without awaiting it: `(tx) => tx\`select …\``. */
export type ReadQuery<T extends readonly object[]> = (tx: postgres.ReservedSql) => postgres.PendingQuery<T>;
/** tenantQuery bound to a pool and a tenant (the API's is also bound to its read slots). */
export type TenantRead = <T extends readonly object[] = postgres.Row[]>(
  fn: ReadQuery<T>,
  opts?: TenantQueryOptions,
) => Promise<T>;

export interface TenantQueryOptions {
  /**
   * `plan_cache_mode = force_generic_plan` for the statement: for a statement over many partitions whose
   * parameters prune them at executor start-up, so that it is planned once per connection, not per call.
   */
  genericPlan?: boolean;
}

/**
 * One read-only statement as secumon_app scoped to one tenant, in ONE round trip: BEGIN READ ONLY, the
 * set_config of role and tenant, the statement and COMMIT are written together and PostgreSQL runs them in
 * order (withTenant waits for BEGIN, then for its statements, then for COMMIT: three round trips). The same
 * guarantees as withTenant: role and tenant are transaction-local; if set_config fails the transaction is
 * aborted, so the statement fails too and never runs without the tenant; the pipelined COMMIT then only ends
 * the aborted transaction. READ ONLY makes a write in `fn` fail instead of committing. `fn` must return the
 * query without awaiting it (`(tx) => tx\`select …\``).
 */
export async function tenantQuery<T extends readonly object[] = postgres.Row[]>(
  sql: Sql,
  tenantId: string,
  fn: ReadQuery<T>,
  opts: TenantQueryOptions = {},
): Promise<T> {
  checkTenantId(tenantId);
  // read-only: safe to run again whenever its session was dropped, whatever it had done by then
  return onceMore(sql, () => readOnce(sql, tenantId, fn, opts));
}

/** An open session the server or the network ended (not a failure to connect: that would fail again). */
function droppedSession(e: unknown): boolean {
  if (e instanceof postgres.PostgresError) return e.code === "57P01"; // admin_shutdown: terminated, restarting
  const code = (e as { code?: unknown } | null)?.code;
  return code === "CONNECTION_CLOSED" || code === "ECONNRESET" || code === "EPIPE";
}

/** Thrown by an attempt that failed on a dropped session and may safely run again (its `cause` says why). */
class Dropped extends Error {}

/**
 * Runs `attempt`; when it throws Dropped, once more. A pooled connection whose server went away while it sat
 * idle (PostgreSQL restarted, an administrator or a proxy closed it) fails the first statement sent on it:
 * the request did not choose that connection, so it should not fail for it. A second Dropped is the
 * database's error to the caller (DATABASE_UNAVAILABLE).
 */
async function onceMore<T>(sql: Sql, attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt();
  } catch (e) {
    if (!(e instanceof Dropped)) throw e;
    return attempt().catch((again: unknown) => {
      throw again instanceof Dropped ? mapDatabaseError(again.cause, sql) : again;
    });
  }
}

async function readOnce<T extends readonly object[]>(
  sql: Sql,
  tenantId: string,
  fn: ReadQuery<T>,
  opts: TenantQueryOptions,
): Promise<T> {
  let tx: postgres.ReservedSql;
  try {
    tx = await sql.reserve();
  } catch (e) {
    throw mapDatabaseError(e, sql);
  }
  // A connection that closed under us is already back in the pool's closed set: releasing it would hand a
  // dead socket to the next query. Other errors (a statement's, a query that failed to build) leave it usable.
  let lost = false;
  const watch = <P extends Promise<unknown>>(p: P): P => {
    p.catch((e: unknown) => {
      if (connectionLost(e)) lost = true;
    });
    return p;
  };
  // issued in this order in the same tick: postgres.js sends them in one write
  const begin = watch(tx`begin read only`.execute());
  const set = watch(
    opts.genericPlan
      ? tx`select set_config('role', ${APP_ROLE}, true), set_config('secumon.tenant_id', ${tenantId}, true),
                set_config('plan_cache_mode', 'force_generic_plan', true)`.execute()
      : tx`select set_config('role', ${APP_ROLE}, true), set_config('secumon.tenant_id', ${tenantId}, true)`.execute(),
  );
  let query: Promise<T>;
  try {
    query = watch(fn(tx).execute());
  } catch (e) {
    query = Promise.reject(e);
    query.catch(() => {});
  }
  const commit = watch(tx`commit`.execute());
  try {
    await begin;
    await set; // its error, if any, says more than the statement's "current transaction is aborted"
    const rows = await query;
    await commit;
    return rows;
  } catch (e) {
    if (droppedSession(e)) throw new Dropped("the session was dropped", { cause: e });
    throw mapDatabaseError(e, sql);
  } finally {
    // back to the pool once idle: after an error the remaining statements still run (a lost connection is
    // left alone: statements postgres.js had not sent yet would never settle)
    if (!lost) {
      await Promise.allSettled([begin, set, query, commit]);
      if (!lost) tx.release();
    }
  }
}

/** The connection is gone: a socket or postgres.js connection error, or a FATAL/PANIC from the server. */
function connectionLost(e: unknown): boolean {
  if (e instanceof postgres.PostgresError) return e.severity === "FATAL" || e.severity === "PANIC";
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && (NETWORK_CODES.has(code) || code === "CONNECTION_ENDED");
}

/** Runs `fn` in a transaction as secumon_admin, which bypasses row-level security: every tenant's rows. */
export function withAdmin<T>(sql: Sql, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return inRole(sql, ADMIN_ROLE, "", fn);
}

async function inRole<T>(sql: Sql, role: string, tenantId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return onceMore(sql, () => inRoleOnce(sql, role, tenantId, fn));
}

async function inRoleOnce<T>(
  sql: Sql,
  role: string,
  tenantId: string,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  let begun = false;
  try {
    const result = await sql.begin(async (tx) => {
      begun = true;
      // not awaited: fn's first statement is pipelined right behind it on the same connection, which runs
      // them in order (one round trip less per transaction). Should it fail, the transaction is aborted and
      // fn's statements fail too: nothing ever runs without the role and tenant.
      const set =
        tx`select set_config('role', ${role}, true), set_config('secumon.tenant_id', ${tenantId}, true)`.execute();
      const r = await fn(tx);
      await set;
      return r;
    });
    return result as T;
  } catch (e) {
    // only when BEGIN itself failed: nothing of `fn` ran, so the transaction may run again
    if (!begun && droppedSession(e)) throw new Dropped("BEGIN failed on a dropped session", { cause: e });
    throw mapDatabaseError(e, sql);
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Socket and DNS failures, and postgres.js's own connection errors (not CONNECTION_ENDED: that is sql.end()). */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "ENOENT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
]);

const URL_HINT = "database.url (SECUMON_DATABASE__URL)";

/**
 * Turns an error meaning "the database cannot be used right now" (unreachable, refused credentials, missing
 * database, shutting down, out of connections) into CollectorError DATABASE_UNAVAILABLE saying what to check;
 * returns any other error unchanged. Messages name user, host and database, never the password.
 */
export function mapDatabaseError(e: unknown, sql: Sql): unknown {
  if (e instanceof CollectorError || !(e instanceof Error)) return e;
  const code = (e as { code?: unknown }).code;
  if (typeof code !== "string") return e;
  const at = describeTarget(sql);
  const unavailable = (message: string) => new CollectorError("DATABASE_UNAVAILABLE", message, { cause: e });
  const isServerError = e instanceof postgres.PostgresError;

  if (!isServerError && NETWORK_CODES.has(code)) {
    if (code === "ENOTFOUND" || code === "EAI_AGAIN") {
      return unavailable(
        `cannot resolve the database host of ${at} (${code}): check the host name in ${URL_HINT}`,
      );
    }
    if (code === "CONNECT_TIMEOUT" || code === "ETIMEDOUT") {
      return unavailable(
        `PostgreSQL at ${at} did not answer within ${sql.options.connect_timeout} s (${code}): check that the server ` +
          `is up, that ${URL_HINT} names the right host and port, and that no firewall drops the connection`,
      );
    }
    if (
      code === "CONNECTION_CLOSED" ||
      code === "CONNECTION_DESTROYED" ||
      code === "ECONNRESET" ||
      code === "EPIPE"
    ) {
      return unavailable(
        `the connection to PostgreSQL at ${at} was lost (${code}): check that the server is still running ` +
          "(a restart or crash closes connections); the collector reconnects on its own once it is back",
      );
    }
    return unavailable(
      `cannot connect to PostgreSQL at ${at} (${code}): check that the server is running and listening there and ` +
        `that ${URL_HINT} names the right host and port`,
    );
  }
  if (!isServerError) return e;
  switch (code) {
    case "28P01":
    case "28000":
      return unavailable(
        `PostgreSQL at ${at} refused the login: ${e.message}. Check the user and password in ${URL_HINT}, and that ` +
          "pg_hba.conf on the server allows this user from this host",
      );
    case "3D000":
      return unavailable(
        `${e.message} on PostgreSQL at ${at}: create it (CREATE DATABASE …, owned by the collector's user) or fix ` +
          `the database name in ${URL_HINT}`,
      );
    case "53300":
      return unavailable(
        `PostgreSQL at ${at} has no free connection slot (${e.message}): lower database.max_connections or raise ` +
          "max_connections on the server",
      );
    case "57P01":
    case "57P02":
    case "57P03":
      return unavailable(
        `PostgreSQL at ${at} is starting up or shutting down (${e.message}): wait for it to finish, then try again`,
      );
    default:
      return code.startsWith("08")
        ? unavailable(`connection problem with PostgreSQL at ${at}: ${e.message} (SQLSTATE ${code})`)
        : e;
  }
}

/** `user@host:port/database` (or `user@socket /dir/.s.PGSQL.5432/database`) — never the password. */
export function describeTarget(sql: Sql): string {
  const o = sql.options;
  const where = o.path
    ? `socket ${o.path}`
    : o.host.map((h, i) => `${h.includes(":") ? `[${h}]` : h}:${o.port[i] ?? o.port[0]}`).join(",");
  return `${o.user}@${where}/${o.database}`;
}

/**
 * Checks the scheme and moves libpq's `host=/socket/dir` query parameter into postgres.js's `path`. Otherwise
 * the URL goes to postgres.js untouched (it also accepts multi-host URLs that WHATWG URL parsing rejects).
 * The messages never repeat the URL: it may hold a password.
 */
function parseDatabaseUrl(raw: string): { url: string; path?: string } {
  if (!/^postgres(ql)?:\/\/[^\s]*$/i.test(raw)) {
    throw new CollectorError(
      "CONFIG_INVALID",
      `${URL_HINT} is not a PostgreSQL URL: expected postgres://user:password@host:5432/database`,
    );
  }
  const q = raw.indexOf("?");
  if (q < 0) return { url: raw };
  const params = new URLSearchParams(raw.slice(q + 1));
  const dir = params.get("host");
  if (dir === null || !dir.startsWith("/")) return { url: raw };
  params.delete("host");
  const authority = raw.slice(raw.indexOf("://") + 3).split(/[/?]/)[0] ?? "";
  const port = /:(\d+)$/.exec(authority)?.[1] ?? "5432";
  const rest = params.toString();
  return {
    url: raw.slice(0, q) + (rest ? `?${rest}` : ""),
    path: `${dir.replace(/\/+$/, "")}/.s.PGSQL.${port}`,
  };
}
