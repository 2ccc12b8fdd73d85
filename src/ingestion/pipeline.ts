/**
 * What happens to a group of messages of one kind taken from the consumer's queue:
 *   parse + decompress + decode each (a failure dead-letters that message) → check the sources exist (an
 *   unknown one dead-letters its batch) → convert to rows, dropping invalid rows by reason → write the group
 *   in ONE transaction (ledger claim + COPY, src/telemetry/writer.ts) → acknowledge every message.
 * While PostgreSQL is unavailable the write is retried with backoff (messages kept alive with `working()`),
 * never acknowledged. When the database refuses the group for any other reason, each batch is written alone,
 * and one that still fails is dead-lettered as write_failed: one bad batch never blocks the others.
 */
import type { TelemetryKind } from "../bus/telemetry.ts";
import { CollectorError } from "../lib/errors.ts";
import { sleep } from "../lib/lifecycle.ts";
import type { Logger } from "../observability/logger.ts";
import type { InventoryPayload, PayloadByKind } from "../protocol/index.ts";
import type { Sql } from "../storage/db.ts";
import { ledgerKey } from "../telemetry/ledger.ts";
import { type LogLine, logRows, metricsRows, scanRows, snmpRows, TableLines } from "../telemetry/rows.ts";
import { checkTime, RejectTally, RowRejected, type TimeWindow } from "../telemetry/validate.ts";
import { type WriteBatch, type WriteResult, writeBatches } from "../telemetry/writer.ts";
import { DeadLetter, decodeEnvelope, type Envelope, type InMsg, parseEnvelope } from "./envelope.ts";
import type { LokiPusher } from "./loki.ts";
import type { IngestionMetrics } from "./metrics.ts";
import type { PartitionDays } from "./partitions.ts";
import type { KnownSources } from "./sources.ts";

export interface PipelineLimits {
  compressions: readonly string[];
  maxUncompressedBytes: number;
  maxFutureSkewMs: number;
  retentionRawMs: number;
  retentionLogsMs: number;
  maxLogLineBytes: number;
}

export interface PipelineDeps {
  sql: Sql;
  sources: KnownSources;
  partitions: PartitionDays;
  metrics: IngestionMetrics;
  log: Logger;
  limits: PipelineLimits;
  deadLetter(kind: TelemetryKind, m: InMsg, reason: string, detail: string): Promise<void>;
  loki: LokiPusher | null;
  /** True once the service is stopping: retries give up and leave messages unacknowledged. */
  stopping(): boolean;
  now?: () => number;
}

interface Prepared {
  msgs: InMsg[];
  env: Envelope;
  batch: WriteBatch;
  tally: RejectTally;
  logs: LogLine[];
}

/** Handles one group; resolves once every message is acknowledged (or left for redelivery when stopping). */
export async function processGroup(kind: TelemetryKind, msgs: InMsg[], d: PipelineDeps): Promise<void> {
  const now = (d.now ?? Date.now)();
  const decoded: { m: InMsg; env: Envelope; payload: PayloadByKind[TelemetryKind] }[] = [];
  const dead: { m: InMsg; reason: string; detail: string }[] = [];
  for (const m of msgs) {
    try {
      const env = parseEnvelope(m, kind, d.limits.compressions);
      decoded.push({ m, env, payload: decodeEnvelope(env, m.data, d.limits.maxUncompressedBytes) });
    } catch (e) {
      if (!(e instanceof DeadLetter)) throw e;
      dead.push({ m, reason: e.reason, detail: e.message });
    }
  }

  const known = await d.sources.filterKnown(
    kind,
    decoded.map((x) => x.env),
  );
  if (kind === "scans" || kind === "snmp") await d.sources.loadTargets(decoded.map((x) => x.env.tenantId));

  const window: TimeWindow = {
    minMs: now - (kind === "logs" ? d.limits.retentionLogsMs : d.limits.retentionRawMs),
    maxMs: now + d.limits.maxFutureSkewMs,
    days: new Set(),
  };
  const prepared = new Map<string, Prepared>();
  for (const { m, env, payload } of decoded) {
    if (!known.has(`${env.tenantId}:${env.sourceId}`)) {
      const what = kind === "scans" || kind === "snmp" ? "probe" : "agent";
      dead.push({
        m,
        reason: "unknown_source",
        detail: `${what} ${env.sourceId} is not known in tenant ${env.tenantId}`,
      });
      continue;
    }
    const key = ledgerKey(env.sourceId, env.batchId);
    const seen = prepared.get(key);
    if (seen) {
      seen.msgs.push(m); // the same batch twice in one group: written once, both acknowledged
      continue;
    }
    prepared.set(key, { msgs: [m], env, ...convert(kind, env, payload, window, d) });
  }

  await Promise.all(
    dead.map(async ({ m, reason, detail }) => {
      await d.deadLetter(kind, m, reason, detail);
      d.metrics.deadLettered.inc({ kind, reason });
      d.metrics.batches.inc({ kind, outcome: "dead_lettered" });
      d.log.warn(
        { kind, reason, subject: m.subject, seq: m.seq, detail },
        `telemetry batch dead-lettered: ${reason}`,
      );
      m.ack();
    }),
  );
  if (prepared.size > 0) {
    await d.partitions.ensure(kind, window.days ?? []);
    await commit(kind, [...prepared.values()], d);
  }
}

function convert(
  kind: TelemetryKind,
  env: Envelope,
  payload: PayloadByKind[TelemetryKind],
  window: TimeWindow,
  d: PipelineDeps,
): { batch: WriteBatch; tally: RejectTally; logs: LogLine[] } {
  const tally = new RejectTally();
  const logs: LogLine[] = [];
  const src = { tenantId: env.tenantId, sourceId: env.sourceId };
  let lines = new TableLines();
  let inventory: WriteBatch["inventory"];
  switch (kind) {
    case "metrics":
      lines = metricsRows(payload as PayloadByKind["metrics"], src, window, tally);
      break;
    case "logs":
      lines = logRows(
        payload as PayloadByKind["logs"],
        src,
        window,
        tally,
        d.limits.maxLogLineBytes,
        d.loki ? logs : undefined,
      );
      break;
    case "scans":
      lines = scanRows(payload as PayloadByKind["scans"], src, window, tally, d.sources.isTarget);
      break;
    case "snmp":
      lines = snmpRows(payload as PayloadByKind["snmp"], src, window, tally, d.sources.isTarget);
      break;
    case "inventory": {
      const p = payload as InventoryPayload;
      try {
        inventory = { timeMs: checkTime(p.time_unix_ms, window), payload: p };
      } catch (e) {
        if (!(e instanceof RowRejected)) throw e;
        tally.add("inventory_hosts", e.reason);
      }
      break;
    }
  }
  const batch: WriteBatch = {
    sourceId: env.sourceId,
    batchId: env.batchId,
    kind,
    tenantId: env.tenantId,
    lines,
  };
  if (inventory) batch.inventory = inventory;
  return { batch, tally, logs };
}

/** PostgreSQL cannot be used right now (retry later) — as opposed to refusing this data. */
export function isTransient(e: unknown): boolean {
  if (e instanceof CollectorError) return e.code === "DATABASE_UNAVAILABLE";
  const code = (e as { code?: unknown }).code;
  if (typeof code !== "string") return false;
  return (
    code.startsWith("08") ||
    code === "40001" ||
    code === "40P01" ||
    code === "53300" ||
    code === "57P01" ||
    code === "57P02" ||
    code === "57P03" ||
    code === "55P03" ||
    code.startsWith("CONNECT") ||
    code === "ECONNREFUSED" ||
    code === "ECONNRESET" ||
    code === "EPIPE" ||
    code === "ENOENT"
  );
}

async function commit(kind: TelemetryKind, group: Prepared[], d: PipelineDeps): Promise<void> {
  let result: WriteResult | null;
  try {
    result = await writeWithRetry(kind, group, d);
  } catch (e) {
    if (group.length > 1) {
      d.log.warn(
        { kind, batches: group.length, err: String(e) },
        "write refused; writing the group's batches one by one",
      );
      for (const p of group) await commit(kind, [p], d);
      return;
    }
    const p = group[0] as Prepared;
    const detail = `PostgreSQL refused the batch: ${String((e as Error).message ?? e)}`;
    for (const m of p.msgs) {
      await d.deadLetter(kind, m, "write_failed", detail);
      m.ack();
    }
    d.metrics.deadLettered.inc({ kind, reason: "write_failed" });
    d.metrics.batches.inc({ kind, outcome: "dead_lettered" });
    d.log.error(
      { kind, batch: p.env.batchId, source: p.env.sourceId, err: String(e) },
      "telemetry batch dead-lettered: write_failed",
    );
    return;
  }
  if (!result) return; // stopping: left unacknowledged, redelivered to whoever runs next
  const committedAt = Date.now();
  for (const p of group) {
    for (const m of p.msgs) m.ack();
    const fresh = result.written.has(ledgerKey(p.env.sourceId, p.env.batchId));
    d.metrics.batches.inc({ kind, outcome: fresh ? "written" : "duplicate" });
    if (!fresh) continue;
    for (const r of p.tally.entries()) d.metrics.rejected.inc({ table: r.table, reason: r.reason }, r.count);
    if (p.env.receivedAt)
      d.metrics.lagSeconds.observe({ kind }, Math.max(0, committedAt - p.env.receivedAt) / 1000);
    if (d.loki && p.logs.length > 0) d.loki.enqueue(p.env.tenantId, p.env.sourceId, p.logs);
  }
  for (const [table, n] of result.rowsByTable) d.metrics.rows.inc({ table }, n);
}

async function writeWithRetry(
  kind: TelemetryKind,
  group: Prepared[],
  d: PipelineDeps,
): Promise<WriteResult | null> {
  let delay = 250;
  for (;;) {
    const t0 = performance.now();
    try {
      const r = await writeBatches(
        d.sql,
        group.map((p) => p.batch),
      );
      d.metrics.writeSeconds.observe({ kind }, (performance.now() - t0) / 1000);
      return r;
    } catch (e) {
      if (!isTransient(e)) throw e;
      d.metrics.writeRetries.inc({ kind });
      d.log.warn(
        { kind, err: String(e), retryInMs: delay },
        "PostgreSQL unavailable; batches kept and retried",
      );
      if (d.stopping()) return null;
      for (const p of group) for (const m of p.msgs) m.working();
      await sleep(delay);
      if (d.stopping()) return null;
      delay = Math.min(delay * 2, 5_000);
    }
  }
}
