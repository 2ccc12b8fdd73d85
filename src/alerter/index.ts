/** The alerter role: rule evaluation, alert state, silences, notification outbox and delivery; leader-elected. */
import type { RoleDefinition } from "../app/role.ts";
import { createAlerter } from "./service.ts";

export const alerterRole: RoleDefinition = {
  name: "alerter",
  summary: "rule evaluation, alert state, silences, notification outbox and delivery; leader-elected",
  needs: ["database", "nats"],
  create: (ctx) => {
    const a = createAlerter({
      sql: ctx.sql,
      log: ctx.log,
      metrics: ctx.metrics,
      nats: ctx.nats,
      keyring: ctx.keyring,
      config: ctx.config.alerter,
    });
    // a plain object: the collector copies the service's own properties
    return { name: a.name, start: a.start, stop: a.stop, readiness: a.readiness };
  },
};
