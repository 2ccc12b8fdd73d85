/**
 * The dead-letter stream TELEMETRY_DLQ: batches that can never be written (undecodable, unknown source, refused
 * by PostgreSQL once isolated) are published there — original body and headers, plus the reason — and then
 * acknowledged on TELEMETRY, so they never block the others. Limits retention with discard-old: the DLQ can
 * never stop ingestion. Subject `secumon.dlq.<kind>.<tenant>.<source>` (`secumon.dlq.<kind>.invalid` when the
 * original subject was unusable). Inspect with `nats stream view TELEMETRY_DLQ`.
 */
import {
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { parseTelemetrySubject, type TelemetryKind } from "../bus/telemetry.ts";
import type { InMsg } from "./envelope.ts";

export const DLQ_STREAM = "TELEMETRY_DLQ";
export const DLQ_REASON = "Secumon-Dlq-Reason";
export const DLQ_DETAIL = "Secumon-Dlq-Detail";
export const DLQ_SEQ = "Secumon-Dlq-Stream-Seq";

export async function ensureDlqStream(jsm: JetStreamManager, maxAgeMs: number): Promise<void> {
  const cfg = {
    name: DLQ_STREAM,
    subjects: ["secumon.dlq.>"],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: maxAgeMs * 1_000_000,
    max_bytes: 256 * 1024 * 1024, // within the 1 GiB the embedded server reserves above TELEMETRY
    num_replicas: 1,
  };
  try {
    const info = await jsm.streams.info(DLQ_STREAM);
    if (info.config.max_age !== cfg.max_age || info.config.max_bytes !== cfg.max_bytes)
      await jsm.streams.update(DLQ_STREAM, { ...info.config, ...cfg });
  } catch (err) {
    if (!/stream not found/i.test(String(err))) throw err;
    await jsm.streams.add(cfg);
  }
}

export function dlqSubject(kind: TelemetryKind, originalSubject: string): string {
  const s = parseTelemetrySubject(originalSubject);
  const safe = (t: string) => /^[A-Za-z0-9_-]{1,64}$/.test(t);
  return s && s.kind === kind && safe(s.tenantId) && safe(s.sourceId)
    ? `secumon.dlq.${kind}.${s.tenantId}.${s.sourceId}`
    : `secumon.dlq.${kind}.invalid`;
}

/** Publishes the message to the DLQ and waits for JetStream's acknowledgement (throws when it fails). */
export async function publishDeadLetter(
  js: JetStreamClient,
  kind: TelemetryKind,
  m: InMsg,
  reason: string,
  detail: string,
): Promise<void> {
  const h = natsHeaders();
  const orig = m.headers as unknown as { keys?: () => string[]; get(n: string): string } | undefined;
  for (const k of orig?.keys?.() ?? []) {
    if (k.toLowerCase() === "nats-msg-id") continue;
    h.set(k, orig?.get(k) ?? "");
  }
  h.set(DLQ_REASON, reason);
  h.set(DLQ_DETAIL, detail.replace(/[\r\n]+/g, " ").slice(0, 300));
  h.set(DLQ_SEQ, String(m.seq));
  h.set("Secumon-Dlq-Subject", m.subject.slice(0, 256));
  await js.publish(dlqSubject(kind, m.subject), m.data, { headers: h, msgID: `dlq:${kind}:${m.seq}` });
}
