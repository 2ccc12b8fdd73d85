/** GET /api/openapi.json (generated once from the mounted routes) and GET /api/docs (offline docs page). */
import { Elysia } from "elysia";
import { openapiDocument } from "./document.ts";
import { DOCS_HTML } from "./page.ts";

export function docsRoutes(
  routes: () => { method: string; path: string; hooks?: Record<string, unknown> }[],
  version: string,
) {
  let doc: Record<string, unknown> | null = null;
  return new Elysia({ name: "api/docs" })
    .get("/api/openapi.json", () => (doc ??= openapiDocument(routes(), version)), {
      detail: { summary: "This API's OpenAPI 3.1 document", tags: ["docs"] },
    })
    .get(
      "/api/docs",
      () =>
        new Response(DOCS_HTML, {
          headers: {
            "content-type": "text/html; charset=utf-8",
            // the page loads nothing from elsewhere, and may not
            "content-security-policy":
              "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'",
          },
        }),
      { detail: { summary: "API documentation page (works offline)", tags: ["docs"] } },
    );
}
