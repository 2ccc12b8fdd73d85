import { CollectorError } from "../../lib/errors.ts";
import { type Tx, withTenant } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import type { RequestInfo } from "../guard.ts";
import { mapWriteError } from "./http-errors.ts";

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
