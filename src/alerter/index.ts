/** The alerter role: rule evaluation, alert state, silences, notification outbox and delivery; leader-elected. */
import { placeholderRole, type RoleDefinition } from "../app/role.ts";

export const alerterRole: RoleDefinition = {
  name: "alerter",
  summary: "rule evaluation, alert state, silences, notification outbox and delivery; leader-elected",
  needs: ["database", "nats"],
  create: (ctx) => placeholderRole("alerter", "issue #5", ctx),
};
