/**
 * End-to-end alert latency for `make bench-alerting` (issue #5): a sample over a threshold *acknowledged by the
 * gateway* → the signed webhook received by a local receiver.
 *
 * A whole collector runs in-process with the roles gateway, ingestion and alerter (evaluation every 1 s) against
 * the benchmark's database, so the alerter also evaluates the benchmark's load every cycle. One agent enrolls
 * with a token over real mTLS and streams `system.cpu_usage` samples (SendMetrics, lz4) every STEP_MS. A rule
 * `system.cpu_usage last 10s > 90` scoped to that agent (no for_duration) pages a webhook channel. Each round:
 * normal samples, then hot samples from a recorded batch on (its ack time is the start) until the firing webhook
 * arrives, then normal samples until the resolved webhook arrives; `samples` rounds.
 */
import { randomUUID } from "node:crypto";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import { channelConfigContext } from "../src/alerter/notify/channels.ts";
import { generateEnrollmentToken } from "../src/pki/tokens.ts";
import { compress, encodePayload } from "../src/protocol/index.ts";
import type { Keyring } from "../src/security/keyring.ts";
import { enroll, identityClient } from "../src/simulator/client.ts";
import { type Sql, withAdmin } from "../src/storage/db.ts";
import { startCollector, testConfig, waitFor } from "../test/support/collector.ts";

const STEP_MS = 500;
const THRESHOLD = 90;
const ROUND_TIMEOUT_MS = 30_000;

export interface E2eOptions {
  /** The benchmark's (migrated) database; the collector connects to it as its external database. */
  databaseUrl: string;
  /** The benchmark's pool on that database (seeding the tenant, token, channel and rule). */
  sql: Sql;
  /** The 32-byte key the benchmark sealed its channels with; the collector gets it as security.encryption_key. */
  encryptionKey: Uint8Array;
  keyring: Keyring;
  samples: number;
}

export interface E2eResult {
  /** Seconds from the gateway's ack of the first batch over the threshold to the firing webhook; Infinity = none within 30 s. */
  latencies: number[];
  /** Seconds from the ack of the first batch over the threshold to the moment it was sent (the gateway's share). */
  ackDelays: number[];
}

interface Ack {
  batch_id: string;
  code: number;
  message: string;
}

export async function measureGatewayAckToWebhook(o: E2eOptions): Promise<E2eResult> {
  const arrivals: { kind: string; at: number }[] = [];
  const hook = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const at = performance.now();
      const body = (await req.json()) as { rule?: { name?: string }; kind?: string };
      if (body.rule?.name === "e2e" && body.kind) arrivals.push({ kind: body.kind, at });
      return new Response("ok");
    },
  });

  // tenant, enrollment token, webhook channel
  const slug = `e2e-${randomUUID().slice(0, 8)}`;
  const { token, hash } = generateEnrollmentToken();
  const channel = randomUUID();
  const tenant = await withAdmin(o.sql, async (tx) => {
    const [t] = await tx<{ id: string }[]>`
      INSERT INTO tenants (name, slug) VALUES (${slug}, ${slug}) RETURNING id::text`;
    await tx`INSERT INTO enrollment_tokens (tenant_id, label, principal_kind, token_hash, expires_at, max_uses)
             VALUES (${t!.id}, 'bench-e2e', 'agent', ${hash}, ${new Date(Date.now() + 3_600_000)}, 1)`;
    await tx`INSERT INTO notification_channels (id, tenant_id, name, type, config_encrypted)
             VALUES (${channel}, ${t!.id}, 'e2e-hook', 'webhook',
                     ${o.keyring.seal(JSON.stringify({ url: `http://127.0.0.1:${hook.port}/` }), channelConfigContext(channel))})`;
    return t!.id;
  });

  const config = testConfig({
    roles: ["gateway", "ingestion", "alerter"],
    database: { url: o.databaseUrl },
    security: { encryption_key: Buffer.from(o.encryptionKey).toString("base64") },
    alerter: { evaluation_interval: "1s" },
  });
  const collector = await startCollector(config);
  const address = `localhost:${config.gateway.grpc_port}`;
  let stream: ClientDuplexStream<object, Ack> | null = null;
  let client: ReturnType<typeof identityClient> | null = null;
  try {
    await waitFor(async () => collector.notReady().length === 0, 60_000, "the collector to be ready");
    const [ca] = await o.sql<{ cert_pem: string }[]>`SELECT cert_pem FROM gateway_ca WHERE id = 1`;
    const caPem = ca!.cert_pem;
    const agent = await enroll({ address, caPem, token, name: "e2e-agent" });
    const [rule] = await withAdmin(
      o.sql,
      (tx) => tx<{ id: string }[]>`
        INSERT INTO alert_rules (tenant_id, name, severity, type, conditions)
        VALUES (${tenant}, 'e2e', 'critical', 'threshold',
                ${tx.json({ scope: { agents: [agent.id] }, conditions: [{ metric: "system.cpu_usage", aggregation: "last", window: "10s", operator: "gt", threshold: THRESHOLD }] } as never)})
        RETURNING id::text`,
    );
    await withAdmin(
      o.sql,
      (tx) =>
        tx`INSERT INTO alert_rule_channels (tenant_id, rule_id, channel_id) VALUES (${tenant}, ${rule!.id}, ${channel})`,
    );

    // one SendMetrics stream; each batch resolves with the instant its ack arrived
    client = identityClient(agent, address);
    const call = (
      client as unknown as Record<string, () => ClientDuplexStream<object, Ack>>
    ).SendMetrics!.call(client);
    stream = call;
    const waiting = new Map<string, { resolve: (at: number) => void; reject: (e: Error) => void }>();
    call.on("data", (a: Ack) => {
      const at = performance.now();
      const w = waiting.get(a.batch_id);
      waiting.delete(a.batch_id);
      if (!w) return;
      if (a.code === 0) w.resolve(at);
      else w.reject(new Error(`the gateway refused a batch: ${a.code} ${a.message}`));
    });
    call.on("error", (e: Error) => {
      for (const w of waiting.values()) w.reject(e);
      waiting.clear();
    });
    const send = (cpu: number): Promise<number> => {
      const raw = encodePayload("metrics", {
        system: [{ time_unix_ms: Date.now(), cpu_usage: cpu, mem_total: 16e9, mem_used: 8e9 }],
      });
      const id = randomUUID();
      const acked = new Promise<number>((resolve, reject) => waiting.set(id, { resolve, reject }));
      call.write({
        batch_id: id,
        compression: 1,
        uncompressed_size: raw.byteLength,
        payload: compress("lz4", raw),
        created_unix_ms: Date.now(),
      });
      return acked;
    };
    const normal = () => 20 + Math.random() * 30;
    /** Sends samples every STEP_MS until a webhook of `kind` beyond `seen` arrives; the first batch's ack time. */
    const streamUntil = async (cpu: () => number, kind: string, seen: number) => {
      const deadline = performance.now() + ROUND_TIMEOUT_MS;
      let firstAck: Promise<number> | null = null;
      let firstSent = 0;
      const hit = () => arrivals.slice(seen).find((a) => a.kind === kind);
      while (!hit() && performance.now() < deadline) {
        const sentAt = performance.now();
        const p = send(cpu());
        if (!firstAck) {
          firstAck = p;
          firstSent = sentAt;
        }
        const next = sentAt + STEP_MS;
        while (!hit() && performance.now() < next) await Bun.sleep(10);
      }
      return { ack: await firstAck!, sent: firstSent, arrival: hit()?.at };
    };

    // warm-up: the agent is known, normal samples flow, the alerter has evaluated the rule
    const warm = performance.now() + 5_000;
    while (performance.now() < warm) {
      await send(normal());
      await Bun.sleep(STEP_MS);
    }

    const latencies: number[] = [];
    const ackDelays: number[] = [];
    for (let i = 0; i < o.samples; i++) {
      const fire = await streamUntil(() => THRESHOLD + 5 + Math.random() * 5, "firing", arrivals.length);
      latencies.push(
        fire.arrival === undefined ? Number.POSITIVE_INFINITY : (fire.arrival - fire.ack) / 1000,
      );
      ackDelays.push((fire.ack - fire.sent) / 1000);
      const resolved = await streamUntil(normal, "resolved", arrivals.length);
      if (resolved.arrival === undefined)
        throw new Error(`round ${i}: no resolved webhook within ${ROUND_TIMEOUT_MS / 1000} s`);
      // start the next crossing anywhere in the evaluation interval
      await Bun.sleep(Math.random() * 1000);
    }
    return { latencies, ackDelays };
  } finally {
    stream?.end();
    client?.close();
    await collector.stop();
    hook.stop(true);
  }
}
