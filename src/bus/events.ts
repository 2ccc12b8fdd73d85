/**
 * The EVENTS stream: state changes other roles react to (the alerter, the UI's live view). Subjects
 * `secumon.events.<kind>.<tenant_id>.<id>`; today `agent` and `probe` status changes with a JSON body
 * `{"kind","id","tenant_id","status","previous","at"}` (`at` = ISO time). Limits retention (7 days), file storage.
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { DiscardPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream";

export const EVENTS_STREAM = "EVENTS";
export const EVENTS_SUBJECTS = "secumon.events.>";

export interface PrincipalStatusEvent {
  kind: "agent" | "probe" | "collector";
  id: string;
  tenant_id: string;
  status: "online" | "offline" | "revoked" | "disabled" | "deleted" | "pending";
  previous?: string;
  at: string;
}

export function principalEventSubject(kind: string, tenantId: string, id: string): string {
  return `secumon.events.${kind}.${tenantId}.${id}`;
}

/** Creates the stream if missing; idempotent, safe from several processes. */
export async function ensureEventsStream(jsm: JetStreamManager): Promise<void> {
  try {
    await jsm.streams.info(EVENTS_STREAM);
  } catch (err) {
    if (!/stream not found/i.test(String(err))) throw err;
    try {
      await jsm.streams.add({
        name: EVENTS_STREAM,
        subjects: [EVENTS_SUBJECTS],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
        max_age: 7 * 86_400 * 1_000_000_000,
        max_bytes: 256 * 1024 * 1024,
        duplicate_window: 120 * 1_000_000_000,
        num_replicas: 1,
      });
    } catch (e) {
      if (!/already in use|already exists/i.test(String(e))) throw e;
    }
  }
}

export async function publishPrincipalEvent(js: JetStreamClient, ev: PrincipalStatusEvent): Promise<void> {
  await js.publish(principalEventSubject(ev.kind, ev.tenant_id, ev.id), JSON.stringify(ev));
}
