/** The ingestion role's self-metrics (on /metrics through the collector's registry). */
import type { Registry } from "../observability/metrics.ts";

export function ingestionMetrics(r: Registry) {
  return {
    pending: r.gauge<"kind">({
      name: "secumon_ingest_consumer_pending",
      help: "Batches in the TELEMETRY stream not yet delivered to this kind's consumer (its backlog).",
      labelNames: ["kind"],
    }),
    ackPending: r.gauge<"kind">({
      name: "secumon_ingest_consumer_ack_pending",
      help: "Batches delivered to the ingestion workers and not yet acknowledged.",
      labelNames: ["kind"],
    }),
    batches: r.counter<"kind" | "outcome">({
      name: "secumon_ingest_batches_total",
      help: "Batches handled, by outcome: written, duplicate (already in the ledger), dead_lettered.",
      labelNames: ["kind", "outcome"],
    }),
    rows: r.counter<"table">({
      name: "secumon_ingest_rows_written_total",
      help: "Rows written per table.",
      labelNames: ["table"],
    }),
    rejected: r.counter<"table" | "reason">({
      name: "secumon_ingest_rows_rejected_total",
      help: "Rows dropped by validation, by table and reason (src/telemetry/validate.ts).",
      labelNames: ["table", "reason"],
    }),
    deadLettered: r.counter<"kind" | "reason">({
      name: "secumon_ingest_dead_lettered_total",
      help: "Batches moved to the TELEMETRY_DLQ stream, by reason.",
      labelNames: ["kind", "reason"],
    }),
    writeSeconds: r.histogram<"kind">({
      name: "secumon_ingest_write_seconds",
      help: "Duration of one write transaction (ledger claim + COPY + commit).",
      labelNames: ["kind"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
    groupBatches: r.histogram<"kind">({
      name: "secumon_ingest_group_batches",
      help: "Batches written per transaction (one group); see ingestion.batch_size and ingestion.flush_interval.",
      labelNames: ["kind"],
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    }),
    lagSeconds: r.histogram<"kind">({
      name: "secumon_ingest_lag_seconds",
      help: "From the gateway receiving a batch (Secumon-Received-At) to its rows being committed.",
      labelNames: ["kind"],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    }),
    writeRetries: r.counter<"kind">({
      name: "secumon_ingest_write_retries_total",
      help: "Write transactions retried because PostgreSQL was unavailable.",
      labelNames: ["kind"],
    }),
  };
}

export type IngestionMetrics = ReturnType<typeof ingestionMetrics>;
