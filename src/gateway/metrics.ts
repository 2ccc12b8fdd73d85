/** The gateway's Prometheus series. */
import type { Registry } from "../observability/metrics.ts";

export function gatewayMetrics(r: Registry) {
  return {
    batches: r.counter<"kind" | "result">({
      name: "secumon_gateway_batches_total",
      help: "Telemetry batches received, by kind and result (ok, duplicate, or the refusal reason).",
      labelNames: ["kind", "result"],
    }),
    batchBytes: r.counter<"kind">({
      name: "secumon_gateway_batch_bytes_total",
      help: "Compressed bytes of accepted telemetry batches.",
      labelNames: ["kind"],
    }),
    ackSeconds: r.histogram({
      name: "secumon_gateway_ack_seconds",
      help: "Time from receiving a batch to acknowledging it (JetStream stored it).",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    }),
    enrollments: r.counter<"kind" | "result">({
      name: "secumon_gateway_enrollments_total",
      help: "Enrollment attempts by principal kind and result (ok or the refusal reason).",
      labelNames: ["kind", "result"],
    }),
    refusals: r.counter<"reason">({
      name: "secumon_gateway_refused_calls_total",
      help: "Calls refused before any work (authentication, revocation, limits), by reason.",
      labelNames: ["reason"],
    }),
    openStreams: r.gauge({ name: "secumon_gateway_open_streams", help: "Open streaming calls." }),
  };
}

export type GatewayMetrics = ReturnType<typeof gatewayMetrics>;
