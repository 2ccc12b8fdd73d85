/**
 * Presence shared by every gateway instance through Redis (when `redis.url` is set; DESIGN.md section 3: last-seen
 * is a shared counter). One sorted set, `<prefix>presence`, member `<kind>:<id>:<tenant>`, score = the last time
 * any gateway saw the principal (a call, a batch, or an open stream, refreshed while it stays open). Online means
 * seen within `offline_after`. Both transitions are decided atomically in Redis, so exactly one instance writes
 * each one to PostgreSQL and publishes its event, whichever instances the agent talks to:
 *   - online: the touch script reports members that were absent or stale before it raised their score;
 *   - offline: the expiry script removes and returns members older than `offline_after` (one caller gets each);
 *   - offline on a clean stop: the release script takes back what the stopping instance saw. Each instance also
 *     keeps its own sightings (`<prefix>presence:i:<instance>`, expiring when the instance stops refreshing it,
 *     listed in `<prefix>presence:instances`); a released member that no other instance saw within
 *     `offline_after` is removed and returned to the stopping instance (offline now), otherwise its last-seen
 *     becomes what the others saw, and it expires from there.
 * The scripts name the per-instance keys themselves (a single Redis, not a cluster).
 */
import { randomUUID } from "node:crypto";
import { connectRedis } from "../storage/redis.ts";

/**
 * ZADD GT each member, in the shared set and in this instance's own (KEYS[2], kept ARGV[2] ms, listed in
 * KEYS[3] as ARGV[3]); returns the members that were absent or older than the cut (offline → online).
 */
const TOUCH = `local cut = tonumber(ARGV[1])
local out = {}
for i = 4, #ARGV, 2 do
  local m = ARGV[i + 1]
  local old = redis.call('ZSCORE', KEYS[1], m)
  redis.call('ZADD', KEYS[1], 'GT', ARGV[i], m)
  redis.call('ZADD', KEYS[2], 'GT', ARGV[i], m)
  if (not old) or tonumber(old) < cut then out[#out + 1] = m end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return out`;

/**
 * A stopping instance (ARGV[2], own set KEYS[2]) takes back its sightings of members ARGV[4..]: each one that no
 * other live instance saw since ARGV[1] is removed from the shared set and returned (this caller writes it
 * offline); the others get the latest score another instance gave them. ARGV[3] is the per-instance key prefix.
 */
const RELEASE = `local cut = tonumber(ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
local others = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local k = ARGV[3] .. id
  if redis.call('EXISTS', k) == 1 then others[#others + 1] = k else redis.call('SREM', KEYS[3], id) end
end
local out = {}
for i = 4, #ARGV do
  local m = ARGV[i]
  local best = nil
  for _, k in ipairs(others) do
    local s = redis.call('ZSCORE', k, m)
    if s and ((not best) or tonumber(s) > best) then best = tonumber(s) end
  end
  if best and best >= cut then
    redis.call('ZADD', KEYS[1], 'XX', best, m)
  elseif redis.call('ZREM', KEYS[1], m) == 1 then
    out[#out + 1] = m
  end
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
  /**
   * A clean stop: takes back this instance's sightings of `members` (the streams it held); returns those no other
   * instance saw since `cut` — removed, so this instance alone writes them offline.
   */
  release(members: string[], cut: number): Promise<string[]>;
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
  const instance = randomUUID();
  const instancePrefix = `${prefix}presence:i:`;
  const own = `${instancePrefix}${instance}`;
  const instances = `${prefix}presence:instances`;
  return {
    async touch(items, cut) {
      const out: string[] = [];
      // this instance's own sightings outlive offline_after a while (a crashed instance's expire with its key)
      const keepMs = String(Math.max(10_000, 3 * (Date.now() - cut)));
      // bounded argument lists per call
      for (let i = 0; i < items.length; i += 500) {
        const args: string[] = [String(cut), keepMs, instance];
        for (const it of items.slice(i, i + 500)) args.push(String(it.seen), it.member);
        out.push(...((await r.eval(TOUCH, 3, key, own, instances, ...args)) as string[]));
      }
      return out;
    },
    async release(members, cut) {
      const out: string[] = [];
      // at least one call even with no members: the script also drops this instance's own keys
      for (let i = 0; i < members.length || i === 0; i += 500) {
        const args = [String(cut), instance, instancePrefix, ...members.slice(i, i + 500)];
        out.push(...((await r.eval(RELEASE, 3, key, own, instances, ...args)) as string[]));
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
