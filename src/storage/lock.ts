/**
 * Leader election on a PostgreSQL session-level advisory lock, held on a dedicated single-connection client.
 *
 * Why a dedicated client and not `sql.reserve()`: when the server restarts, a postgres.js reserved connection
 * never settles its next query (measured with postgres.js 3.4.9: the write hits a null socket and the promise
 * hangs), so a leader would hang forever. A client of its own (max 1) fails fast with a connection error and
 * reconnects; the lock does not survive that new session, which `ensure()` notices (it checks pg_locks for its
 * own backend) and then tries to take the lock again. After a failed or stalled check (a server restart that
 * takes seconds, as with a large shared_buffers, left postgres.js 3.4.9's client failing every later query),
 * the client is thrown away and the next check opens a new one.
 */
import postgres from "postgres";
import type { Logger } from "../observability/logger.ts";
import type { Sql, Tx } from "./db.ts";

/** A lock check that takes longer than this counts as failed (the session is then replaced). */
const CHECK_TIMEOUT_MS = 10_000;

export class SessionLock {
  private client: Sql;
  private readonly options: Record<string, unknown>;
  private holding = false;
  private closed = false;

  constructor(
    pool: Sql,
    private readonly key: readonly [number, number],
    private readonly log: Logger,
    private readonly what: string,
    /** A check that takes longer than this counts as failed (tests shorten it). */
    private readonly checkTimeoutMs = CHECK_TIMEOUT_MS,
  ) {
    const { shared: _shared, ...options } = pool.options as unknown as Record<string, unknown>;
    // never recycle the session on its own: that would silently drop the lock
    this.options = { ...options, max: 1, idle_timeout: null, max_lifetime: null };
    this.client = this.open();
  }

  /** The dedicated session; work fenced by the lock runs here (see `transaction`). */
  get sql(): Sql {
    return this.client;
  }

  private open(): Sql {
    return postgres(
      this.options as unknown as postgres.Options<Record<string, postgres.PostgresType>>,
    ) as Sql;
  }

  /** Replaces the session's client after a failure; the old one is closed without waiting. */
  private renew(): void {
    const old = this.client;
    this.client = this.open();
    old.end({ timeout: 0 }).catch(() => {});
  }

  get held(): boolean {
    return this.holding;
  }

  /** Takes the lock, or confirms it is still held by this session. Never throws; false on any error. */
  async ensure(): Promise<boolean> {
    if (this.closed) return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer from the database in ${this.checkTimeoutMs / 1000} s`)),
        this.checkTimeoutMs,
      );
    });
    try {
      return await Promise.race([this.check(), stalled]);
    } catch (err) {
      if (this.holding)
        this.log.warn({ err: String(err) }, `${this.what}: lost the database session holding the lock`);
      this.holding = false;
      if (!this.closed) this.renew();
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private async check(): Promise<boolean> {
    const [k1, k2] = this.key;
    // a check that outlived its timeout answers for a client already replaced: it must not change the state
    const sql = this.client;
    if (this.holding) {
      const [row] = await sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_locks
         WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = ${k1} AND objid = ${k2}
           AND objsubid = 2 AND granted`;
      if (sql !== this.client) return false;
      if ((row?.n ?? 0) > 0) return true;
      this.holding = false;
      this.log.warn(`${this.what}: the lock was lost with its database session; trying to take it again`);
    }
    const [row] = await sql<{ ok: boolean }[]>`SELECT pg_try_advisory_lock(${k1}, ${k2}) AS ok`;
    if (sql !== this.client) return false;
    this.holding = row?.ok === true;
    if (this.holding) this.log.info(`${this.what}: this instance is now the leader`);
    return this.holding;
  }

  /**
   * Runs `fn` in a transaction on the lock's session, as secumon_admin, fenced: the transaction also takes the
   * lock at transaction level, so it fails when another session holds it (a stale leader cannot write).
   */
  async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const [k1, k2] = this.key;
    return (await this.sql.begin(async (tx) => {
      await tx`SELECT set_config('role', 'secumon_admin', true)`;
      const [fence] = await tx<{ ok: boolean }[]>`SELECT pg_try_advisory_xact_lock(${k1}, ${k2}) AS ok`;
      if (!fence?.ok)
        throw new Error(`${this.what}: another instance holds the lock; this work is discarded`);
      return fn(tx as unknown as Tx);
    })) as T;
  }

  /** Releases the lock and closes the session; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.holding) {
      const [k1, k2] = this.key;
      await this.sql`SELECT pg_advisory_unlock(${k1}, ${k2})`.catch(() => {});
    }
    this.holding = false;
    await this.sql.end({ timeout: 2 }).catch(() => {});
  }
}
