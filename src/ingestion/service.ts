/**
 * The ingestion service: ensures the dead-letter stream, one durable consumer per telemetry kind and the
 * partitions the accepted time window needs, then runs a KindConsumer per kind. The metrics kind gets
 * `ingestion.concurrency` writers (it carries most of the volume), the others half of it (at least one).
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { RoleContext } from "../app/role.ts";
import { TELEMETRY_KINDS, TELEMETRY_STREAM, type TelemetryKind } from "../bus/telemetry.ts";
import { parseDuration } from "../config/schema.ts";
import { CollectorError } from "../lib/errors.ts";
import type { Service } from "../lib/lifecycle.ts";
import { consumerName, ensureConsumer, KindConsumer } from "./consumer.ts";
import { ensureDlqStream, publishDeadLetter } from "./dead-letter.ts";
import { LokiPusher } from "./loki.ts";
import { ingestionMetrics } from "./metrics.ts";
import { ensureWindowPartitions, PartitionDays } from "./partitions.ts";
import type { PipelineDeps } from "./pipeline.ts";
import { KnownSources } from "./sources.ts";

export function createIngestion(ctx: RoleContext): Service {
  const cfg = ctx.config.ingestion;
  const log = ctx.log;
  const metrics = ingestionMetrics(ctx.metrics);
  const consumers: KindConsumer[] = [];
  let loki: LokiPusher | null = null;
  let stopping = false;
  let lagTimer: ReturnType<typeof setInterval> | null = null;
  let partitionTimer: ReturnType<typeof setInterval> | null = null;
  let ready: string | null = "ingestion: starting";
  const retentionRawMs = parseDuration(ctx.config.retention.raw);
  const retentionLogsMs = parseDuration(ctx.config.retention.logs);

  return {
    name: "ingestion",
    readiness: () => ready,
    async start() {
      const nc = ctx.nats;
      if (!nc) throw new CollectorError("INTERNAL", "the ingestion role needs NATS but none was connected");
      const jsm = await jetstreamManager(nc);
      const js = jetstream(nc);
      await ensureDlqStream(jsm, parseDuration(cfg.dead_letter_max_age));
      const ackWaitMs = parseDuration(cfg.ack_wait);
      const writersFor = (k: TelemetryKind) =>
        k === "metrics" ? cfg.concurrency : Math.max(1, Math.floor(cfg.concurrency / 2));
      for (const kind of TELEMETRY_KINDS) {
        await ensureConsumer(jsm, kind, ackWaitMs, Math.max(1000, cfg.batch_size * writersFor(kind) * 3));
      }
      const ensure = () => ensureWindowPartitions(ctx.sql);
      await ensure();
      partitionTimer = setInterval(() => {
        ensure().catch((err) =>
          log.warn(
            { err: String(err) },
            "could not create upcoming telemetry partitions; retrying in an hour",
          ),
        );
      }, 3_600_000);
      if (ctx.config.loki.url) {
        loki = new LokiPusher({
          url: ctx.config.loki.url,
          batchBytes: ctx.config.loki.batch_size,
          batchWaitMs: parseDuration(ctx.config.loki.batch_wait),
          log: log.child({ component: "loki" }),
          metrics: ctx.metrics,
        });
      }
      const deps: PipelineDeps = {
        sql: ctx.sql,
        sources: new KnownSources(ctx.sql),
        partitions: new PartitionDays(ctx.sql),
        metrics,
        log,
        loki,
        limits: {
          compressions: cfg.decompression.algorithms,
          maxUncompressedBytes: cfg.decompression.max_uncompressed_bytes,
          maxFutureSkewMs: parseDuration(cfg.max_future_skew),
          retentionRawMs,
          retentionLogsMs,
          maxLogLineBytes: cfg.max_log_line_bytes,
        },
        deadLetter: (kind, m, reason, detail) => publishDeadLetter(js, kind, m, reason, detail),
        stopping: () => stopping,
      };
      for (const kind of TELEMETRY_KINDS) {
        const c = new KindConsumer(js, {
          kind,
          writers: writersFor(kind),
          batchSize: cfg.batch_size,
          ackWaitMs,
          log,
          deps,
        });
        await c.start();
        consumers.push(c);
      }
      const updateLag = async () => {
        for (const kind of TELEMETRY_KINDS) {
          const info = await jsm.consumers.info(TELEMETRY_STREAM, consumerName(kind));
          metrics.pending.set({ kind }, info.num_pending);
          metrics.ackPending.set({ kind }, info.num_ack_pending);
        }
      };
      lagTimer = setInterval(() => {
        updateLag().catch(() => {});
      }, 5000);
      await updateLag().catch(() => {});
      ready = null;
      log.info(
        { kinds: TELEMETRY_KINDS, concurrency: cfg.concurrency, batchSize: cfg.batch_size },
        "ingestion consuming TELEMETRY",
      );
    },
    async stop() {
      stopping = true;
      ready = "ingestion: stopping";
      if (lagTimer) clearInterval(lagTimer);
      if (partitionTimer) clearInterval(partitionTimer);
      lagTimer = partitionTimer = null;
      await Promise.all(consumers.splice(0).map((c) => c.stop()));
      await loki?.stop();
    },
  };
}
