/**
 * Presence shared by every gateway instance through Redis (when `redis.url` is set; DESIGN.md section 3: last-seen
 * is a shared counter). One sorted set, `<prefix>presence`, member `<kind>:<id>:<tenant>`, score = the last time
 * any gateway saw the principal (a call, a batch, or an open stream, refreshed while it stays open). Online means
 * seen within `offline_after`. Both transitions are decided atomically in Redis, so exactly one instance writes
 * each one to PostgreSQL and publishes its event, whichever instances the agent talks to:
 *   - online: the touch script reports members that were absent or stale before it raised their score;
 *   - offline: the expiry script removes and returns members older than `offline_after` (one caller gets each).
 */
import { connectRedis } from "../storage/redis.ts";

/** ZADD GT each member; returns the members that were absent or older than the cut (offline → online). */
const TOUCH = `local cut = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local m = ARGV[i + 1]
  local old = redis.call('ZSCORE', KEYS[1], m)
  redis.call('ZADD', KEYS[1], 'GT', ARGV[i], m)
  if (not old) or tonumber(old) < cut then out[#out + 1] = m end
end
return out`;

/** Removes and returns up to ARGV[2] members last seen before ARGV[1]. */
const EXPIRE = `local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
return gone`;

export interface SharedMember {
  kind: "agent" | "probe";
  id: string;
  tenantId: string;
}

export const memberOf = (m: SharedMember): string => `${m.kind}:${m.id}:${m.tenantId}`;

export function parseMember(s: string): SharedMember | null {
  const [kind, id, tenantId, ...rest] = s.split(":");
  if ((kind !== "agent" && kind !== "probe") || !id || !tenantId || rest.length > 0) return null;
  return { kind, id, tenantId };
}

export interface SharedPresence {
  /** Raises each member's last-seen to `seen` (never lowers it); returns those that came online. */
  touch(items: { member: string; seen: number }[], cut: number): Promise<string[]>;
  /** Removes and returns the members not seen since `cut` (they are offline now). */
  expire(cut: number, limit?: number): Promise<string[]>;
  /** Members seen since `cut` (online anywhere). */
  online(cut: number): Promise<string[]>;
  /** Last-seen (ms) of one member, or null. */
  lastSeen(member: string): Promise<number | null>;
  forget(member: string): Promise<void>;
  close(): Promise<void>;
}

export async function redisPresence(url: string, prefix = "secumon:"): Promise<SharedPresence> {
  const r = await connectRedis(url, "the gateway", "a single gateway");
  const key = `${prefix}presence`;
  return {
    async touch(items, cut) {
      const out: string[] = [];
      // bounded argument lists per call
      for (let i = 0; i < items.length; i += 500) {
        const args: string[] = [String(cut)];
        for (const it of items.slice(i, i + 500)) args.push(String(it.seen), it.member);
        out.push(...((await r.eval(TOUCH, 1, key, ...args)) as string[]));
      }
      return out;
    },
    async expire(cut, limit = 1000) {
      return (await r.eval(EXPIRE, 1, key, String(cut), String(limit))) as string[];
    },
    async online(cut) {
      return r.zrangebyscore(key, cut, "+inf");
    },
    async lastSeen(member) {
      const s = await r.zscore(key, member);
      return s === null ? null : Number(s);
    },
    async forget(member) {
      await r.zrem(key, member);
    },
    async close() {
      await r.quit().catch(() => r.disconnect());
    },
  };
}
