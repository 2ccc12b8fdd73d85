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
import type { CounterStore } from "./lib/store.ts";
import { openApiDeps } from "./open-deps.ts";
import { authenticate } from "./principal.ts";

export interface RoleAuthorizer {
  authorize(request: Request): Promise<void>;
  close(): Promise<void>;
}

export function roleAuthorizer(ctx: RoleContext, need: Role): RoleAuthorizer {
  let deps: Promise<ApiDeps> | null = null;
  let store: CounterStore | null = null;
  const load = () => {
    deps ??= openApiDeps(ctx).then((d) => {
      store = d.store;
      return d;
    });
    return deps;
  };
  return {
    async authorize(request) {
      const principal = await authenticate(await load(), request.headers, false);
      if (!roleAtLeast(principal.role, need)) throw forbidden(need);
    },
    async close() {
      // forget the handles too: a later authorize (the owning role started again) opens a fresh store
      const s = store;
      store = null;
      deps = null;
      await s?.close();
    },
  };
}
