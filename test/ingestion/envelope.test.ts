/**
 * Ingestion decodes without repeating the gateway's strict wire check (src/ingestion/envelope.ts). Whatever a
 * foreign publisher puts on a telemetry subject must still end as a dead letter with a reason or as an object
 * the row validation then checks — never as another exception that would stop a writer.
 */
import { describe, expect, test } from "bun:test";
import { TELEMETRY_KINDS, type TelemetryKind } from "../../src/bus/telemetry.ts";
import { DeadLetter, decodeEnvelope, type Envelope } from "../../src/ingestion/envelope.ts";
import { compress, encodePayload, type PayloadByKind } from "../../src/protocol/index.ts";
import { logRows, metricsRows, scanRows, snmpRows } from "../../src/telemetry/rows.ts";
import { RejectTally } from "../../src/telemetry/validate.ts";

const env = <K extends TelemetryKind>(
  kind: K,
  compression = "none",
  declaredSize = 0,
): Envelope & { kind: K } => ({
  kind,
  tenantId: crypto.randomUUID(),
  sourceId: crypto.randomUUID(),
  batchId: "b",
  compression,
  declaredSize,
  receivedAt: null,
});

const reasonOf = (f: () => unknown): string | null => {
  try {
    f();
    return null;
  } catch (e) {
    if (e instanceof DeadLetter) return e.reason;
    throw e;
  }
};

let converted = 0;
/** Runs the kind's row converter; only RowRejected (counted in the tally) may happen inside. */
function toRows(kind: TelemetryKind, p: PayloadByKind[TelemetryKind]): void {
  const src = { tenantId: crypto.randomUUID(), sourceId: crypto.randomUUID() };
  const w = { minMs: 0, maxMs: Date.now() + 86_400_000, days: new Set<number>() };
  const t = new RejectTally();
  if (kind === "metrics") metricsRows(p as PayloadByKind["metrics"], src, w, t);
  else if (kind === "logs") logRows(p as PayloadByKind["logs"], src, w, t, 8192);
  else if (kind === "scans") scanRows(p as PayloadByKind["scans"], src, w, t, () => true);
  else if (kind === "snmp") snmpRows(p as PayloadByKind["snmp"], src, w, t, () => true);
  converted++;
}

describe("decodeEnvelope", () => {
  test("a good payload decodes to the documented plain object", () => {
    const bytes = encodePayload("metrics", {
      system: [{ time_unix_ms: 1_700_000_000_000, cpu_usage: 12.5 }],
    });
    const p = decodeEnvelope(env("metrics", "none", bytes.length), bytes, 1 << 20);
    expect(p.system?.[0]?.cpu_usage).toBe(12.5);
    expect(p.system?.[0]?.time_unix_ms).toBe(1_700_000_000_000);
    expect(p.disks).toEqual([]);
  });

  test("structurally broken payloads are malformed_protobuf dead letters", () => {
    const good = encodePayload("metrics", { system: [{ time_unix_ms: 1_700_000_000_000, cpu_usage: 1 }] });
    const cases: Uint8Array[] = [
      new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]), // wire type 7
      good.subarray(0, good.length - 3), // truncated inside a field
      new Uint8Array([0x0a, 0x7f, 0x01]), // field 1, length 127, 1 byte present
      new Uint8Array([0x0b]), // start group without end
    ];
    for (const b of cases)
      expect(reasonOf(() => decodeEnvelope(env("metrics", "none", b.length), b, 1 << 20))).toBe(
        "malformed_protobuf",
      );
  });

  test("a bad compressed body keeps its own reason", () => {
    const bytes = encodePayload("metrics", { system: [] });
    const lz4 = compress("lz4", bytes);
    expect(reasonOf(() => decodeEnvelope(env("metrics", "lz4", bytes.length + 7), lz4, 1 << 20))).toBe(
      "size_mismatch",
    );
    expect(reasonOf(() => decodeEnvelope(env("metrics", "lz4", 1 << 21), lz4, 1 << 20))).toBe("too_large");
  });

  test("random bytes never throw anything but a dead letter, for every kind", () => {
    let seed = 42;
    const rnd = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const good = encodePayload("metrics", {
      system: [{ time_unix_ms: 1_700_000_000_000, cpu_usage: 1, extra: { a: 1 } }],
      disks: [{ time_unix_ms: 1_700_000_000_000, device: "sda" }],
    });
    let dead = 0;
    for (const kind of TELEMETRY_KINDS) {
      for (let i = 0; i < 2000; i++) {
        // half pure noise, half a good payload with a few bytes flipped
        const b =
          i % 2 === 0
            ? Uint8Array.from({ length: 1 + Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256))
            : good.map((x) => (rnd() < 0.05 ? Math.floor(rnd() * 256) : x));
        let p: PayloadByKind[TelemetryKind] | null = null;
        if (reasonOf(() => (p = decodeEnvelope(env(kind, "none", b.length), b, 1 << 20))) !== null) dead++;
        if (p) toRows(kind, p); // accepted: the row validation copes with whatever it holds
      }
    }
    expect(dead).toBeGreaterThan(0); // the cases above are not all accepted by chance
    expect(converted).toBeGreaterThan(0);
  });
});
