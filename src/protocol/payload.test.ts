import { describe, expect, test } from "bun:test";
import { isProtocolError } from "./errors.ts";
import { decodePayload, encodePayload, logLevelName, validatePayload } from "./payload.ts";
import type { LogsPayload, MetricsPayload } from "./types.ts";

const metrics: MetricsPayload = {
  system: [
    { time_unix_ms: 1_700_000_000_000, cpu_usage: 0, mem_total: 16e9, extra: { temp_c: 51.5 } },
    { time_unix_ms: 1_700_000_010_000, load_avg_1: 0.25 },
  ],
  disks: [{ time_unix_ms: 1_700_000_000_000, device: "sda1", mountpoint: "/", read_bytes: 2 ** 40 }],
  networks: [{ time_unix_ms: 1_700_000_000_000, interface: "eth0", rx_bytes: 5 }],
};

const logs: LogsPayload = {
  entries: [
    {
      time_unix_ms: 1_700_000_000_000,
      level: 5,
      source: "journald",
      message: "disk full ✗",
      fields: { unit: "x" },
    },
  ],
};

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isProtocolError(err)) return err.reason;
    throw err;
  }
  return "accepted";
}

describe("payload codecs", () => {
  test("metrics round trip keeps snake_case names, NULL-able optionals and numbers", () => {
    const back = decodePayload("metrics", encodePayload("metrics", metrics));
    const s0 = back.system![0]!;
    expect(s0.time_unix_ms).toBe(1_700_000_000_000);
    expect(s0.cpu_usage).toBe(0); // measured zero is not absent
    expect(s0.cpu_user).toBeUndefined(); // not measured → NULL
    expect(s0.mem_total).toBe(16e9);
    expect(s0.extra).toEqual({ temp_c: 51.5 });
    expect(back.system![1]!.extra).toEqual({});
    expect(back.disks![0]!.read_bytes).toBe(2 ** 40);
    expect(back.disks![0]!.write_bytes).toBeUndefined();
    expect(back.networks![0]!.interface).toBe("eth0");
  });

  test("longs as strings on request", () => {
    const back = decodePayload("metrics", encodePayload("metrics", metrics), { longs: "string" });
    expect(back.system![0]!.time_unix_ms).toBe("1700000000000");
  });

  test("every kind round trips; empty arrays present", () => {
    expect(decodePayload("logs", encodePayload("logs", logs)).entries![0]!.message).toBe("disk full ✗");
    expect(logLevelName(5)).toBe("error");
    const inv = decodePayload(
      "inventory",
      encodePayload("inventory", { time_unix_ms: 1, os: { hostname: "h" } }),
    );
    expect(inv.os!.hostname).toBe("h");
    expect(inv.packages).toEqual([]);
    const scans = decodePayload(
      "scans",
      encodePayload("scans", {
        results: [{ time_unix_ms: 1, target_id: "t", test_type: "ping", success: true, latency_ms: 3 }],
      }),
    );
    expect(scans.results![0]!.packet_loss).toBeUndefined();
    const snmp = decodePayload(
      "snmp",
      encodePayload("snmp", {
        samples: [{ time_unix_ms: 1, target_id: "t", oid: "1.3.6", value_numeric: 7 }],
      }),
    );
    expect(snmp.samples![0]!.value_numeric).toBe(7);
    expect(decodePayload("metrics", new Uint8Array(0))).toEqual({ system: [], disks: [], networks: [] });
  });

  test("garbage bytes are refused", () => {
    const garbage = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    expect(refused(() => decodePayload("metrics", garbage))).toBe("malformed_protobuf");
    let rejected = 0;
    for (let i = 0; i < 200; i++) {
      const r = refused(() => validatePayload("metrics", crypto.getRandomValues(new Uint8Array(64))));
      if (r === "malformed_protobuf") rejected++;
      else expect(r).toBe("accepted"); // never any other error
    }
    expect(rejected).toBeGreaterThan(150);
  });

  test("truncated protobuf is refused", () => {
    const bytes = encodePayload("metrics", metrics);
    for (const cut of [1, 5, 17, bytes.length - 1]) {
      expect(refused(() => decodePayload("metrics", bytes.subarray(0, cut)))).toBe("malformed_protobuf");
    }
  });

  test("a valid protobuf of the wrong type is refused", () => {
    expect(refused(() => decodePayload("metrics", encodePayload("logs", logs)))).toBe("malformed_protobuf");
    expect(refused(() => decodePayload("logs", encodePayload("metrics", metrics)))).toBe(
      "malformed_protobuf",
    );
  });

  test("invalid UTF-8 in a string field is refused", () => {
    // LogsPayload{entries:[LogEntry{message: 0xff 0xfe}]}
    const bad = Uint8Array.from([0x0a, 0x04, 0x22, 0x02, 0xff, 0xfe]);
    expect(refused(() => decodePayload("logs", bad))).toBe("malformed_protobuf");
  });

  test("unknown fields from newer agents are skipped", () => {
    const bytes = encodePayload("logs", logs);
    const withExtra = new Uint8Array([...bytes, 0xf8, 0x01, 0x2a]); // field 31, varint 42
    expect(decodePayload("logs", withExtra).entries).toHaveLength(1);
  });

  test("encode refuses fields of the wrong type", () => {
    expect(() =>
      encodePayload("metrics", { system: [{ time_unix_ms: "soon" as unknown as number }] }),
    ).toThrow();
  });
});
