/**
 * Leader election: the evaluator runs only in the alerter instance holding a session-level PostgreSQL
 * advisory lock, on one reserved connection. When that process dies (even kill -9), PostgreSQL closes its
 * session and releases the lock, and a follower polling with pg_try_advisory_lock takes over.
 * Two-int key (objsubid 2 in pg_locks) so it cannot collide with the single-bigint keys used elsewhere.
 * Each cycle re-checks, on the same connection, that this session still holds the lock (a silently
 * reconnected connection would not), and the cycle's transaction takes the same lock at transaction level
 * as a fence: it fails when another session holds it.
 */
import type { ReservedSql, Sql } from "postgres";
import type { Logger } from "../observability/logger.ts";
import type { Tx } from "../storage/db.ts";

export const LEADER_LOCK: readonly [number, number] = [0x5ec0, 0xa1e7];

export class Leadership {
  private conn: ReservedSql | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly log: Logger,
  ) {}

  /** The reserved connection holding the lock, or null when not the leader. */
  get connection(): ReservedSql | null {
    return this.conn;
  }

  get isLeader(): boolean {
    return this.conn !== null;
  }

  /** Tries to become (or stay) the leader; returns whether this instance leads now. */
  async ensure(): Promise<boolean> {
    try {
      if (this.conn) {
        const [held] = await this.conn<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pg_locks
           WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = ${LEADER_LOCK[0]}
             AND objid = ${LEADER_LOCK[1]} AND objsubid = 2 AND granted`;
        if ((held?.n ?? 0) > 0) return true;
        const [again] = await this.conn<
          { ok: boolean }[]
        >`SELECT pg_try_advisory_lock(${LEADER_LOCK[0]}, ${LEADER_LOCK[1]}) AS ok`;
        if (again?.ok) return true;
        this.log.warn(
          "alerter lost the leader lock (its database session was replaced); another instance evaluates",
        );
        this.drop();
        return false;
      }
      const conn = await this.sql.reserve();
      try {
        const [r] = await conn<
          { ok: boolean }[]
        >`SELECT pg_try_advisory_lock(${LEADER_LOCK[0]}, ${LEADER_LOCK[1]}) AS ok`;
        if (!r?.ok) {
          conn.release();
          return false;
        }
      } catch (e) {
        conn.release();
        throw e;
      }
      this.conn = conn;
      this.log.info("this alerter is now the leader: it evaluates the rules");
      return true;
    } catch (e) {
      if (this.conn) {
        this.log.warn({ err: String(e) }, "alerter leader connection failed; stepping down");
        this.drop();
      }
      return false;
    }
  }

  /** Gives up leadership (after an error on the leader connection, or at stop). */
  async release(): Promise<void> {
    const c = this.conn;
    if (!c) return;
    this.conn = null;
    await c`SELECT pg_advisory_unlock(${LEADER_LOCK[0]}, ${LEADER_LOCK[1]})`.catch(() => {});
    c.release();
  }

  /** Forgets the connection without unlocking (it is broken, or holds no lock). */
  drop(): void {
    const c = this.conn;
    this.conn = null;
    c?.release();
  }
}

/**
 * Runs `fn` in a transaction on the leader's reserved connection (postgres.js reserved connections have no
 * begin()), as secumon_admin, fenced by the leader lock taken at transaction level.
 */
export async function inLeaderTransaction<T>(conn: ReservedSql, fn: (tx: Tx) => Promise<T>): Promise<T> {
  await conn`BEGIN`;
  try {
    await conn`SELECT set_config('role', 'secumon_admin', true)`;
    const [fence] = await conn<
      { ok: boolean }[]
    >`SELECT pg_try_advisory_xact_lock(${LEADER_LOCK[0]}, ${LEADER_LOCK[1]}) AS ok`;
    if (!fence?.ok) throw new Error("another alerter holds the leader lock; this cycle is discarded");
    const result = await fn(conn as unknown as Tx);
    await conn`COMMIT`;
    return result;
  } catch (e) {
    await conn`ROLLBACK`.catch(() => {});
    throw e;
  }
}
