import { availableParallelism } from "node:os";
import { CollectorError } from "../../lib/errors.ts";
import { type Slots, slots } from "../../lib/slots.ts";
import { type Sql, type TenantRead, type Tx, tenantQuery, withTenant } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import type { RequestInfo } from "../guard.ts";
import { mapWriteError } from "./http-errors.ts";

/** How many API reads (tenantRead) run in PostgreSQL at once per pool: twice the cores (slots.ts). */
export const READ_SLOTS = Math.max(2, 2 * availableParallelism());
const readSlots = new WeakMap<Sql, Slots>();

/**
 * One read-only statement in the request's tenant, in one round trip (tenantQuery), through the pool's read
 * slots: at most READ_SLOTS at once, the others wait in order. Errors mapped as inTenant maps them.
 */
export function tenantRead(deps: ApiDeps, req: Pick<RequestInfo, "tenantId">): TenantRead {
  const sql = deps.readSql ?? deps.sql;
  let s = readSlots.get(sql);
  if (!s) {
    s = slots(READ_SLOTS);
    readSlots.set(sql, s);
  }
  const limit = s;
  return (fn, opts) =>
    limit.run(() =>
      tenantQuery(sql, req.tenantId, fn, opts).catch((e) => {
        throw mapWriteError(e); // e.g. a NUL character in a filter: 422, as inTenant answers it
      }),
    );
}

/** Runs `fn` in the request's tenant transaction (RLS), mapping constraint violations to 409/422. */
export function inTenant<T>(deps: ApiDeps, req: Pick<RequestInfo, "tenantId">, fn: (tx: Tx) => Promise<T>) {
  return withTenant(deps.sql, req.tenantId, fn).catch((e) => {
    throw mapWriteError(e);
  });
}

/** 422 listing every problem a pure validator found (paths like `/conditions/0/window`), under `body`. */
export function validationFailed(
  errors: { path: string; message: string }[],
  where = "body",
): CollectorError {
  const details = errors.map((e) => ({ path: `${where}${e.path}`, message: e.message }));
  return new CollectorError(
    "BAD_REQUEST",
    `invalid ${where}: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`,
    { status: 422, details },
  );
}
