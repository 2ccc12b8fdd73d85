/** The ingestion role: JetStream consumers -> decompress -> decode -> batch COPY into PostgreSQL; logs; inventory. */
import { placeholderRole, type RoleDefinition } from "../app/role.ts";

export const ingestionRole: RoleDefinition = {
  name: "ingestion",
  summary: "JetStream consumers -> decompress -> decode -> batch COPY into PostgreSQL; logs; inventory",
  needs: ["database", "nats"],
  create: (ctx) => placeholderRole("ingestion", "issue #4", ctx),
};
