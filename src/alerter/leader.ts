/**
 * Leader election: the evaluator runs only in the alerter instance holding a session-level PostgreSQL
 * advisory lock (src/storage/lock.ts). When that process dies (even kill -9), PostgreSQL closes its session and
 * releases the lock, and a follower polling for it takes over. Two-int key (objsubid 2 in pg_locks) so it
 * cannot collide with single-bigint keys used elsewhere. Each cycle's writes run in a transaction on the lock's
 * session that takes the same lock at transaction level as a fence.
 */
import type { Logger } from "../observability/logger.ts";
import type { Sql } from "../storage/db.ts";
import { SessionLock } from "../storage/lock.ts";

export const LEADER_LOCK: readonly [number, number] = [0x5ec0, 0xa1e7];

export function alerterLeadership(sql: Sql, log: Logger): SessionLock {
  return new SessionLock(sql, LEADER_LOCK, log, "alerter leader");
}
