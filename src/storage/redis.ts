/**
 * The Redis client every role that shares state across instances uses (`redis.url`): the API's counters and
 * the gateway's presence. Connected eagerly, so a wrong URL fails the start with one clear error.
 */
import Redis from "ioredis";
import { CollectorError } from "../lib/errors.ts";

/**
 * Connects to `url`; `who` names the user in the error ("the gateway", "the API") and `alone` says what works
 * without Redis ("a single gateway").
 */
export async function connectRedis(url: string, who: string, alone: string): Promise<Redis> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true });
  r.on("error", () => {}); // surfaced by the failing command instead (callers log and retry)
  try {
    await r.connect();
  } catch (e) {
    r.disconnect();
    throw new CollectorError(
      "DEPENDENCY_MISSING",
      `${who} cannot connect to Redis at redis.url (${(e as Error).message}): check that it is running and ` +
        `reachable, or leave redis.url empty on ${alone}`,
      { cause: e },
    );
  }
  return r;
}
