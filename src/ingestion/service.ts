/**
 * The ingestion service: ensures the dead-letter stream, one durable consumer per telemetry kind and the
 * partitions the accepted time window needs, then runs a KindConsumer per kind. The metrics kind gets
 * `ingestion.concurrency` writers (it carries most of the volume), the others half of it (at least one).
 * TELEMETRY may be sharded into several streams (TELEMETRY, TELEMETRY_1, …; src/bus/telemetry.ts): every
 * stream present is consumed, found at start and looked for again every `streamScanMs`, and the writers of a
 * kind are split between the streams present at start (at least one each).
 */
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
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

/** The TELEMETRY streams present: the stream itself and its shards `TELEMETRY_<k>`, in shard order. */
export async function telemetryStreamsPresent(jsm: JetStreamManager): Promise<string[]> {
  const names: string[] = [];
  for await (const n of jsm.streams.names()) {
    if (n === TELEMETRY_STREAM || new RegExp(`^${TELEMETRY_STREAM}_\\d+$`).test(n)) names.push(n);
  }
  const shard = (n: string) => (n === TELEMETRY_STREAM ? 0 : Number(n.slice(TELEMETRY_STREAM.length + 1)));
  return names.sort((a, b) => shard(a) - shard(b));
}

export interface IngestionOptions {
  /** How often to look for new TELEMETRY shards (default 30 s). */
  streamScanMs?: number;
}

export function createIngestion(ctx: RoleContext, opts: IngestionOptions = {}): Service {
  const cfg = ctx.config.ingestion;
  const log = ctx.log;
  const metrics = ingestionMetrics(ctx.metrics);
  const consumers: KindConsumer[] = [];
  let loki: LokiPusher | null = null;
  let stopping = false;
  let lagTimer: ReturnType<typeof setInterval> | null = null;
  let partitionTimer: ReturnType<typeof setInterval> | null = null;
  let scanTimer: ReturnType<typeof setInterval> | null = null;
  const consuming = new Set<string>();
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
      const initial = await telemetryStreamsPresent(jsm);
      if (initial.length === 0) initial.push(TELEMETRY_STREAM); // its absence is reported by consumer creation
      const perStream = (k: TelemetryKind) => Math.max(1, Math.round(writersFor(k) / initial.length));
      const consume = async (stream: string) => {
        for (const kind of TELEMETRY_KINDS) {
          await ensureConsumer(
            jsm,
            stream,
            kind,
            ackWaitMs,
            Math.max(1000, cfg.batch_size * perStream(kind) * 3),
          );
        }
        for (const kind of TELEMETRY_KINDS) {
          const c = new KindConsumer(js, {
            stream,
            kind,
            writers: perStream(kind),
            batchSize: cfg.batch_size,
            lingerMs: parseDuration(cfg.flush_interval),
            ackWaitMs,
            log,
            deps,
          });
          await c.start();
          if (stopping)
            await c.stop(); // a shard found while stopping
          else consumers.push(c);
        }
        consuming.add(stream);
      };
      for (const stream of initial) await consume(stream);
      const scan = async () => {
        for (const stream of await telemetryStreamsPresent(jsm)) {
          if (consuming.has(stream) || stopping) continue;
          await consume(stream);
          log.info({ stream }, "ingestion consuming a new TELEMETRY shard");
        }
      };
      scanTimer = setInterval(() => {
        scan().catch((err) =>
          log.warn({ err: String(err) }, "could not look for new TELEMETRY shards; trying again later"),
        );
      }, opts.streamScanMs ?? 30_000);
      const updateLag = async () => {
        for (const kind of TELEMETRY_KINDS) {
          let pending = 0;
          let ackPending = 0;
          for (const stream of consuming) {
            const info = await jsm.consumers.info(stream, consumerName(kind));
            pending += info.num_pending;
            ackPending += info.num_ack_pending;
          }
          metrics.pending.set({ kind }, pending);
          metrics.ackPending.set({ kind }, ackPending);
        }
      };
      lagTimer = setInterval(() => {
        updateLag().catch(() => {});
      }, 5000);
      await updateLag().catch(() => {});
      ready = null;
      log.info(
        {
          kinds: TELEMETRY_KINDS,
          streams: [...consuming],
          concurrency: cfg.concurrency,
          batchSize: cfg.batch_size,
        },
        "ingestion consuming TELEMETRY",
      );
    },
    async stop() {
      stopping = true;
      ready = "ingestion: stopping";
      if (lagTimer) clearInterval(lagTimer);
      if (partitionTimer) clearInterval(partitionTimer);
      if (scanTimer) clearInterval(scanTimer);
      lagTimer = partitionTimer = scanTimer = null;
      await Promise.all(consumers.splice(0).map((c) => c.stop()));
      await loki?.stop();
    },
  };
}
