/** The API's errors, all CollectorError so the one error handler (src/app/http.ts) renders the envelope. */
import { CollectorError } from "../../lib/errors.ts";

export const notFound = (what: string) =>
  new CollectorError("NOT_FOUND", `${what} not found: check the id (it may have been deleted)`);
export const unauthenticated = (
  msg = "sign in first: send Authorization: Bearer <access token or API key>",
) => new CollectorError("UNAUTHENTICATED", msg);
export const forbidden = (need: string) =>
  new CollectorError("FORBIDDEN", `this needs the ${need} role; ask an administrator of your tenant`);
export const conflict = (msg: string) => new CollectorError("CONFLICT", msg);
export const badRequest = (msg: string) => new CollectorError("BAD_REQUEST", msg);
/** 422 with field paths, like schema validation failures. */
export const invalid = (path: string, message: string) =>
  new CollectorError("BAD_REQUEST", `invalid ${path}: ${message}`, {
    status: 422,
    details: [{ path, message }],
  });
export const tooMany = (msg: string, retryAfterMs: number) =>
  new CollectorError("RATE_LIMITED", msg, {
    details: { retry_after_seconds: Math.ceil(retryAfterMs / 1000) },
  });

/** Maps the database's constraint violations on writes to 409/422 instead of 500. */
export function mapWriteError(e: unknown): unknown {
  const code = (e as { code?: string }).code;
  const constraint = (e as { constraint_name?: string }).constraint_name ?? "";
  if (code === "23505") {
    return conflict(`another record already uses this value (${constraint}); choose a different one`);
  }
  if (code === "23503") {
    return new CollectorError("BAD_REQUEST", `a referenced record does not exist (${constraint})`, {
      status: 422,
      details: [{ path: "body", message: `reference ${constraint} not found` }],
    });
  }
  if (code === "22021" || code === "22P05") {
    return new CollectorError(
      "BAD_REQUEST",
      "a text value contains a NUL character or invalid UTF-8; remove it",
      {
        status: 422,
        details: [{ path: "input", message: "NUL character or invalid UTF-8" }],
      },
    );
  }
  if (code === "23514" || code === "22P02" || code === "22007" || code === "22008") {
    return new CollectorError("BAD_REQUEST", `the value breaks a rule (${constraint || code})`, {
      status: 422,
      details: [{ path: "body", message: constraint || "invalid value" }],
    });
  }
  return e;
}
