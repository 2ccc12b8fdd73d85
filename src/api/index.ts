/** The api role: HTTP API (REST, GraphQL, OpenAPI), authentication and the embedded web UI. */
import { placeholderRole, type RoleDefinition } from "../app/role.ts";

export const apiRole: RoleDefinition = {
  name: "api",
  summary: "HTTP API (REST, GraphQL, OpenAPI), authentication and the embedded web UI",
  needs: ["database"],
  create: (ctx) => placeholderRole("api", "issue #6", ctx),
};
