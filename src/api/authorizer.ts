/**
 * Authentication for routes that other roles mount on the shared HTTP server (the wgmanager's
 * /api/v1/wireguard/*): the same bearer tokens and API keys as the API, verified the same way
 * (src/api/principal.ts), with a minimum role. Session revocations are seen through the counter store: Redis
 * when `redis.url` is set, else the collector's one in-memory store, which the api role uses too (a sign-out
 * stops the token here at once when both roles run in one process).
 */
import type { RoleContext } from "../app/role.ts";
import type { ApiDeps, Role } from "./deps.ts";
import { roleAtLeast } from "./deps.ts";
import { forbidden } from "./lib/http-errors.ts";
import { openApiDeps } from "./open-deps.ts";
import { authenticate } from "./principal.ts";

export interface RoleAuthorizer {
  authorize(request: Request): Promise<void>;
  close(): Promise<void>;
}

export function roleAuthorizer(ctx: RoleContext, need: Role): RoleAuthorizer {
  let deps: Promise<ApiDeps> | null = null;
  const load = () => {
    if (!deps) {
      const opening = openApiDeps(ctx);
      deps = opening;
      // a store that could not be opened (Redis down at the first request) is tried again at the next request,
      // instead of every later request failing with that first error until the collector restarts
      opening.catch(() => {
        if (deps === opening) deps = null;
      });
    }
    return deps;
  };
  return {
    async authorize(request) {
      const principal = await authenticate(await load(), request.headers, false);
      if (!roleAtLeast(principal.role, need)) throw forbidden(need);
    },
    async close() {
      // forget the handles too: a later authorize (the owning role started again) opens a fresh store. A store
      // still being opened is waited for and closed as well, never left connected.
      const pending = deps;
      deps = null;
      const d = await pending?.catch(() => null);
      await d?.store.close();
    },
  };
}
