/**
 * The id of an HTTP request, in its answer's X-Request-Id and in every log line about it: the caller's own
 * X-Request-Id when it is a plausible id (a proxy's or a client's, for tracing across systems), else a new
 * UUID. One rule for every answer, whether the API's edge gives it before routing or a route does.
 */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Decided once per request: the API's edge and the HTTP app's derive both ask, and must answer the same id. */
const ids = new WeakMap<Request, string>();

export function requestIdOf(request: Request): string {
  let id = ids.get(request);
  if (id === undefined) {
    const incoming = request.headers.get("x-request-id");
    id = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    ids.set(request, id);
  }
  return id;
}
