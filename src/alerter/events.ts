/**
 * Alert state changes for the UI and the API, on core NATS (best effort; the outbox is the durable path):
 * subject `secumon.events.alert.<tenant_id>.<rule_id>`, JSON body:
 *   {"type": "alert.state", "tenant_id", "rule_id", "instance_id", "fingerprint",
 *    "state": "pending" | "firing" | "resolved" | "inactive", "labels": {…}, "value", "threshold", "at": ISO time}
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../observability/logger.ts";
import type { AlertEvent } from "./engine/cycle.ts";

export const alertSubject = (tenantId: string, ruleId: string) =>
  `secumon.events.alert.${tenantId}.${ruleId}`;

export function publishEvents(nats: NatsConnection | null, events: readonly AlertEvent[], log: Logger): void {
  if (!nats || events.length === 0) return;
  try {
    for (const e of events) {
      nats.publish(
        alertSubject(e.tenantId, e.ruleId),
        JSON.stringify({
          type: "alert.state",
          tenant_id: e.tenantId,
          rule_id: e.ruleId,
          instance_id: e.instanceId,
          fingerprint: e.fingerprint,
          state: e.state,
          labels: e.labels,
          value: e.value !== null && Number.isFinite(e.value) ? e.value : null,
          threshold: e.threshold,
          at: new Date(e.at).toISOString(),
        }),
      );
    }
  } catch (err) {
    log.warn(
      { err: String(err), events: events.length },
      "could not publish alert events on NATS (UI updates only)",
    );
  }
}
