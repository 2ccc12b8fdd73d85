import { t } from "elysia";

export const IdParams = t.Object({ id: t.String({ format: "uuid" }) });
export const Tags = t.Array(t.String({ minLength: 1, maxLength: 64, pattern: "^[^\\s,]+$" }), {
  maxItems: 50,
  uniqueItems: true,
});
export const Name = t.String({ minLength: 1, maxLength: 200 });
/** Free-form JSON object (agent/probe config, tenant settings…), bounded in size by api.max_body_bytes. */
export const JsonObject = t.Record(t.String({ maxLength: 100 }), t.Unknown());
