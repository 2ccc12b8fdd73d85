/**
 * src/app/http.ts: a handler that throws something unexpected answers 500 with the JSON envelope, names the
 * request id (the operator's key into the log), never the error itself; the log line has the id and the error.
 */
import { expect, test } from "bun:test";
import { Writable } from "node:stream";
import { createHttpApp } from "../../src/app/http.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { Registry } from "../../src/observability/metrics.ts";

test("an unexpected error: 500 naming the request id, details only in the log", async () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const app = createHttpApp({
    log: createLogger({ level: "info", destination }),
    metrics: new Registry(),
    notReady: () => [],
  }).get("/boom", () => {
    throw new TypeError("secret-ish detail: cannot read x of undefined");
  });
  const r = await app.handle(
    new Request("http://localhost/boom", { headers: { "x-request-id": "req-500-test" } }),
  );
  expect(r.status).toBe(500);
  expect(r.headers.get("x-request-id")).toBe("req-500-test");
  const body = (await r.json()) as { status: string; errorType: string; error: string };
  expect(body).toEqual({
    status: "error",
    errorType: "INTERNAL",
    error: "internal error; the collector's log has the details under requestId req-500-test",
  });
  const logged = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "unhandled error in HTTP handler");
  expect(logged?.requestId).toBe("req-500-test");
  expect(logged?.err).toContain("cannot read x of undefined");
});
