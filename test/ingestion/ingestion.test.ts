/**
 * The ingestion role end to end on real processes: a private nats-server, the shared test PostgreSQL, batches
 * published the way the gateway publishes them. Rows land once; bad batches go to TELEMETRY_DLQ with their
 * reason and do not block good ones; bad rows are dropped and counted by reason.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { jetstreamManager } from "@nats-io/jetstream";
import protobuf from "protobufjs";
import { ensureTelemetryStream } from "../../src/bus/telemetry.ts";
import { DLQ_REASON, DLQ_STREAM } from "../../src/ingestion/dead-letter.ts";
import { withLz4Prefix } from "../../src/protocol/testing.ts";
import { waitFor } from "../support/collector.ts";
import { countRows, type Harness, harness, publish } from "./harness.ts";

let h: Harness;
const now = () => Date.now();

beforeAll(async () => {
  h = await harness();
}, 60_000);
afterAll(async () => {
  await h?.close();
}, 30_000);

const metricText = () => h.metrics.render();
function metricValue(text: string, name: string, labels: string): number {
  const line = text
    .split("\n")
    .find((l) => l.startsWith(`${name}{${labels}}`) || (labels === "" && l.startsWith(`${name} `)));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
}

async function dlqMessages(): Promise<{ subject: string; reason: string }[]> {
  const jsm = await jetstreamManager(h.nc);
  const info = await jsm.streams.info(DLQ_STREAM);
  const out: { subject: string; reason: string }[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(DLQ_STREAM, { seq }).catch(() => null);
    if (m) out.push({ subject: m.subject, reason: m.header?.get(DLQ_REASON) ?? "" });
  }
  return out;
}

describe("ingestion", () => {
  test("metrics batches in lz4, zstd and uncompressed land once each, with their ledger rows", async () => {
    const agent = h.f.agent;
    const mk = (i: number) => ({
      system: [{ time_unix_ms: now() - i, cpu_usage: 10 + i, mem_total: 1000, mem_used: 500 }],
      disks: [{ time_unix_ms: now(), device: "sda", used_bytes: 1 }],
      networks: [{ time_unix_ms: now(), interface: "eth0", rx_bytes: 1 }],
    });
    await publish(h.js, {
      kind: "metrics",
      tenant: h.f.tenant,
      source: agent,
      payload: mk(1),
      compression: "lz4",
    });
    await publish(h.js, {
      kind: "metrics",
      tenant: h.f.tenant,
      source: agent,
      payload: mk(2),
      compression: "zstd",
    });
    await publish(h.js, {
      kind: "metrics",
      tenant: h.f.tenant,
      source: agent,
      payload: mk(3),
      compression: "none",
    });
    await waitFor(
      async () => (await countRows(h.sql, "system_metrics", h.sql`agent_id = ${agent}`)) === 3,
      10_000,
      "3 rows",
    );
    expect(await countRows(h.sql, "disk_metrics", h.sql`agent_id = ${agent}`)).toBe(3);
    expect(await countRows(h.sql, "network_metrics", h.sql`agent_id = ${agent}`)).toBe(3);
    expect(await countRows(h.sql, "ingested_batches", h.sql`source_id = ${agent}`)).toBe(3);
    const text = metricText();
    expect(
      metricValue(text, "secumon_ingest_rows_written_total", 'table="system_metrics"'),
    ).toBeGreaterThanOrEqual(3);
    expect(
      metricValue(text, "secumon_ingest_batches_total", 'kind="metrics",outcome="written"'),
    ).toBeGreaterThanOrEqual(3);
    expect(text).toContain("secumon_ingest_write_seconds_bucket");
    expect(text).toContain('secumon_ingest_lag_seconds_count{kind="metrics"}');
  });

  test("a batch published again beyond JetStream's dedup window (new message id) is stored once", async () => {
    const batchId = crypto.randomUUID();
    const payload = { system: [{ time_unix_ms: now(), cpu_usage: 42 }] };
    const before = await countRows(h.sql, "system_metrics", h.sql`cpu_usage = 42`);
    await publish(h.js, {
      kind: "metrics",
      tenant: h.f.tenant,
      source: h.f.agent,
      payload,
      batchId,
      msgId: "first",
    });
    await publish(h.js, {
      kind: "metrics",
      tenant: h.f.tenant,
      source: h.f.agent,
      payload,
      batchId,
      msgId: "second",
    });
    await waitFor(
      async () =>
        metricValue(metricText(), "secumon_ingest_batches_total", 'kind="metrics",outcome="duplicate"') >= 1,
      10_000,
      "the duplicate to be recognised",
    );
    expect((await countRows(h.sql, "system_metrics", h.sql`cpu_usage = 42`)) - before).toBe(1);
  });

  test("every TELEMETRY shard is consumed, including shards created after the start", async () => {
    // shards 1 and 2 appear while ingestion runs (the gateway creates them): found by the periodic look-up
    await ensureTelemetryStream(await jetstreamManager(h.nc), {
      maxAgeMs: 3_600_000,
      maxBytes: 0,
      shards: 3,
    });
    const t = now();
    for (const k of [0, 1, 2]) {
      await publish(h.js, {
        kind: "metrics",
        tenant: h.f.tenant,
        source: h.f.agent,
        payload: { system: [{ time_unix_ms: t, cpu_usage: 60 + k }] },
        subject: `${k === 0 ? "secumon" : `secumon-shard.${k}`}.metrics.${h.f.tenant}.${h.f.agent}`,
      });
    }
    await waitFor(
      async () =>
        (await countRows(
          h.sql,
          "system_metrics",
          h.sql`cpu_usage in (60, 61, 62) and time = ${new Date(t)}`,
        )) === 3,
      15_000,
      "a row from each shard",
    );
    const streams = (await (await jetstreamManager(h.nc)).streams.list().next()).map((s) => s.config.name);
    expect(streams).toEqual(expect.arrayContaining(["TELEMETRY", "TELEMETRY_1", "TELEMETRY_2"]));
  });

  test("undecodable batches and unknown senders are dead-lettered with their reason; good batches still land", async () => {
    const t = h.f.tenant;
    const a = h.f.agent;
    const good = { system: [{ time_unix_ms: now(), cpu_usage: 77 }] };
    const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]);
    await publish(h.js, {
      kind: "metrics",
      tenant: t,
      source: a,
      payload: {},
      compression: "none",
      body: garbage,
      declaredSize: 5,
    });
    await publish(h.js, {
      kind: "metrics",
      tenant: t,
      source: a,
      payload: good,
      extraHeaders: { "Secumon-Compression": "snappy" },
    });
    const lz4 = (await import("../../src/protocol/index.ts")).compress(
      "lz4",
      (await import("../../src/protocol/index.ts")).encodePayload("metrics", good),
    );
    await publish(h.js, {
      kind: "metrics",
      tenant: t,
      source: a,
      payload: good,
      body: withLz4Prefix(lz4, 99_999),
      declaredSize: 99_999,
    });
    await publish(h.js, { kind: "metrics", tenant: t, source: crypto.randomUUID(), payload: good });
    await publish(h.js, { kind: "metrics", tenant: h.f.otherTenant, source: a, payload: good }); // agent of another tenant
    await publish(h.js, { kind: "metrics", tenant: t, source: a, payload: good });
    await waitFor(async () => (await dlqMessages()).length >= 5, 10_000, "5 dead letters");
    const reasons = (await dlqMessages()).map((m) => m.reason).sort();
    expect(reasons).toEqual([
      "malformed_protobuf",
      "size_mismatch",
      "unknown_compression",
      "unknown_source",
      "unknown_source",
    ]);
    await waitFor(
      async () => (await countRows(h.sql, "system_metrics", h.sql`cpu_usage = 77`)) === 1,
      10_000,
      "the good batch",
    );
    const dlq = await dlqMessages();
    expect(dlq.every((m) => m.subject.startsWith("secumon.dlq.metrics."))).toBe(true);
    expect(
      metricValue(
        metricText(),
        "secumon_ingest_dead_lettered_total",
        'kind="metrics",reason="unknown_source"',
      ),
    ).toBe(2);
  });

  test("bad rows are dropped and counted by reason; the valid rows of the same batch are stored", async () => {
    const t = now();
    const payload = {
      system: [
        { time_unix_ms: t, cpu_usage: 55.5 },
        { time_unix_ms: t, cpu_usage: Number.NaN },
        { time_unix_ms: t, cpu_usage: 101 },
        { time_unix_ms: t + 3_600_000, cpu_usage: 1 },
        { time_unix_ms: t - 4 * 86_400_000, cpu_usage: 1 },
        { time_unix_ms: 0, cpu_usage: 1 },
      ],
      networks: [
        // a negative int64 counter (-1) as the uint64 the wire carries
        {
          time_unix_ms: t,
          interface: "eth1",
          rx_bytes: (
            protobuf.util.Long as unknown as { fromString(s: string, u: boolean): number }
          ).fromString("18446744073709551615", true),
        },
        { time_unix_ms: t, interface: "", rx_bytes: 1 },
      ],
    };
    await publish(h.js, { kind: "metrics", tenant: h.f.tenant, source: h.f.agent, payload });
    await waitFor(
      async () => (await countRows(h.sql, "system_metrics", h.sql`cpu_usage = 55.5`)) === 1,
      10_000,
      "the valid row",
    );
    const text = metricText();
    const rej = (table: string, reason: string) =>
      metricValue(text, "secumon_ingest_rows_rejected_total", `table="${table}",reason="${reason}"`);
    expect(rej("system_metrics", "not_finite")).toBe(1);
    expect(rej("system_metrics", "out_of_range")).toBe(1);
    expect(rej("system_metrics", "time_future")).toBe(1);
    expect(rej("system_metrics", "time_past")).toBe(2);
    expect(rej("network_metrics", "negative_counter")).toBe(1);
    expect(rej("network_metrics", "missing_field")).toBe(1);
    expect(await countRows(h.sql, "network_metrics", h.sql`interface in ('eth1', '')`)).toBe(0);
  });

  test("scan results: a target of another tenant is refused row by row; SNMP samples are stored", async () => {
    await publish(h.js, {
      kind: "scans",
      tenant: h.f.tenant,
      source: h.f.probe,
      payload: {
        results: [
          {
            time_unix_ms: now(),
            target_id: h.f.target,
            test_type: "ping",
            success: true,
            latency_ms: 3.5,
            packet_loss: 0,
          },
          { time_unix_ms: now(), target_id: h.f.otherTarget, test_type: "ping", success: true },
          { time_unix_ms: now(), target_id: "not-a-uuid", test_type: "ping", success: false },
        ],
      },
    });
    await publish(h.js, {
      kind: "snmp",
      tenant: h.f.tenant,
      source: h.f.probe,
      payload: {
        samples: [
          {
            time_unix_ms: now(),
            target_id: h.f.target,
            oid: "1.3.6.1.2.1.1.5.0",
            value_type: "octetstring",
            value_string: "sw1",
          },
        ],
      },
    });
    await waitFor(
      async () => (await countRows(h.sql, "snmp_metrics", h.sql`probe_id = ${h.f.probe}`)) === 1,
      10_000,
      "snmp row",
    );
    await waitFor(
      async () => (await countRows(h.sql, "scan_results", h.sql`probe_id = ${h.f.probe}`)) === 1,
      10_000,
      "scan row",
    );
    const text = metricText();
    expect(
      metricValue(text, "secumon_ingest_rows_rejected_total", 'table="scan_results",reason="unknown_target"'),
    ).toBe(1);
    expect(
      metricValue(text, "secumon_ingest_rows_rejected_total", 'table="scan_results",reason="bad_target"'),
    ).toBe(1);
  });

  test("inventory: current state per agent and the change history between snapshots", async () => {
    const base = {
      os: { hostname: "web-1", name: "debian", version: "12.7", kernel: "6.1.0-25-amd64", arch: "amd64" },
    };
    await publish(h.js, {
      kind: "inventory",
      tenant: h.f.tenant,
      source: h.f.agent,
      payload: {
        ...base,
        time_unix_ms: now() - 60_000,
        packages: [
          { name: "openssl", version: "3.0.2", arch: "amd64", manager: "dpkg" },
          { name: "curl", version: "7.88.1", arch: "amd64", manager: "dpkg" },
        ],
        services: [{ name: "ssh", state: "running", enabled: true }],
        ports: [{ protocol: "tcp", address: "0.0.0.0", port: 22, process: "sshd", pid: 1 }],
      },
    });
    await waitFor(
      async () => (await countRows(h.sql, "inventory_hosts", h.sql`agent_id = ${h.f.agent}`)) === 1,
      10_000,
      "host",
    );
    const hosts =
      await h.sql`select agent_id from inventory_packages where tenant_id = ${h.f.tenant} and name = 'openssl' and version = '3.0.2'`;
    expect(hosts.map((r) => r.agent_id)).toEqual([h.f.agent]);
    await publish(h.js, {
      kind: "inventory",
      tenant: h.f.tenant,
      source: h.f.agent,
      payload: {
        ...base,
        os: { ...base.os, kernel: "6.1.0-26-amd64" },
        time_unix_ms: now(),
        packages: [
          { name: "openssl", version: "3.0.13", arch: "amd64", manager: "dpkg" },
          { name: "nginx", version: "1.22.1", arch: "amd64", manager: "dpkg" },
        ],
        services: [{ name: "ssh", state: "running", enabled: true }],
        ports: [],
      },
    });
    await waitFor(
      async () => (await countRows(h.sql, "inventory_changes", h.sql`agent_id = ${h.f.agent}`)) > 0,
      10_000,
      "changes",
    );
    const changes = await h.sql`select item_type, item, change, old_value, new_value from inventory_changes
      where agent_id = ${h.f.agent} order by item_type, item`;
    expect(
      changes.map((c) => `${c.item_type} ${c.item} ${c.change} ${c.old_value ?? ""}>${c.new_value ?? ""}`),
    ).toEqual([
      "os kernel changed 6.1.0-25-amd64>6.1.0-26-amd64",
      "package dpkg:curl:amd64 removed 7.88.1>",
      "package dpkg:nginx:amd64 installed >1.22.1",
      "package dpkg:openssl:amd64 upgraded 3.0.2>3.0.13",
      "port tcp/0.0.0.0:22 removed sshd>",
    ]);
    const [host] =
      await h.sql`select kernel, packages, ports from inventory_hosts where agent_id = ${h.f.agent}`;
    expect(host).toEqual({ kernel: "6.1.0-26-amd64", packages: 2, ports: 0 });
  });

  test("consumer backlog is exported per kind", async () => {
    await waitFor(
      async () => metricText().includes('secumon_ingest_consumer_pending{kind="metrics"} 0'),
      10_000,
      "lag gauge",
    );
  });
});
