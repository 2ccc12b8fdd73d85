/** The ingestion role: JetStream consumers -> decompress -> decode -> batch COPY into PostgreSQL; logs; inventory. */
import type { RoleDefinition } from "../app/role.ts";
import { createIngestion } from "./service.ts";

export const ingestionRole: RoleDefinition = {
  name: "ingestion",
  summary: "JetStream consumers -> decompress -> decode -> batch COPY into PostgreSQL; logs; inventory",
  needs: ["database", "nats"],
  create: (ctx) => createIngestion(ctx),
};
