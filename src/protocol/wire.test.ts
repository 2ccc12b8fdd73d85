import { describe, expect, test } from "bun:test";
import protobuf from "protobufjs";
import type { TelemetryKind } from "../bus/telemetry.ts";
import { makePayload, simHost } from "../simulator/data.ts";
import { isProtocolError } from "./errors.ts";
import { payloadType } from "./payload.ts";
import { validateWire, wireOk } from "./wire.ts";
import { explainWire } from "./wire-explain.ts";

/** The reference walker's verdict: null when accepted, else its error message. */
function reference(kind: TelemetryKind, bytes: Uint8Array): string | null {
  try {
    explainWire(payloadType(kind), bytes);
    return null;
  } catch (err) {
    if (isProtocolError(err)) return err.message;
    throw err;
  }
}

function fast(kind: TelemetryKind, bytes: Uint8Array): string | null {
  try {
    validateWire(payloadType(kind), bytes);
    return null;
  } catch (err) {
    if (isProtocolError(err)) return err.message;
    throw err;
  }
}

/** Deterministic PRNG so a failure is reproducible. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const KINDS: TelemetryKind[] = ["metrics", "logs", "inventory", "scans", "snmp"];

describe("fast wire check", () => {
  test("accepts and refuses exactly what the reference walker does, with the same message", () => {
    const rnd = prng(42);
    const host = simHost(1);
    let refused = 0;
    let total = 0;
    for (const kind of KINDS) {
      const valid = makePayload(kind, host, 12, 1_764_000_000_000).bytes;
      expect(wireOk(payloadType(kind), valid)).toBe(true);
      const cases: Uint8Array[] = [valid];
      for (let i = 0; i < 300; i++) {
        const m = new Uint8Array(valid);
        const flips = 1 + Math.floor(rnd() * 3);
        for (let j = 0; j < flips; j++) m[Math.floor(rnd() * m.length)] = Math.floor(rnd() * 256);
        cases.push(m, valid.subarray(0, Math.floor(rnd() * valid.length)));
      }
      for (let i = 0; i < 100; i++)
        cases.push(crypto.getRandomValues(new Uint8Array(1 + Math.floor(rnd() * 48))));
      for (const other of KINDS) if (other !== kind) cases.push(makePayload(other, host, 3).bytes);
      for (const bytes of cases) {
        const want = reference(kind, bytes);
        expect(fast(kind, bytes)).toBe(want);
        expect(wireOk(payloadType(kind), bytes)).toBe(want === null);
        total++;
        if (want !== null) refused++;
      }
    }
    expect(refused).toBeGreaterThan(total / 4); // the mutations exercise the refusal paths
    expect(refused).toBeLessThan(total); // …and some mutants stay valid
  });

  test("non-ASCII strings: valid UTF-8 accepted, invalid refused naming the field", () => {
    // LogsPayload{entries:[LogEntry{message: "é✗"}]}
    const ok = Uint8Array.from([0x0a, 0x07, 0x22, 0x05, 0xc3, 0xa9, 0xe2, 0x9c, 0x97]);
    expect(fast("logs", ok)).toBeNull();
    const surrogate = Uint8Array.from([0x0a, 0x05, 0x22, 0x03, 0xed, 0xa0, 0x80]);
    expect(fast("logs", surrogate)).toBe(
      "payload is not a valid protobuf LogsPayload.entries.message: string is not valid UTF-8",
    );
    // map<string,string> key with a lone continuation byte
    const badKey = Uint8Array.from([0x0a, 0x07, 0x2a, 0x05, 0x0a, 0x01, 0x80, 0x12, 0x00]);
    expect(fast("logs", badKey)).toBe(
      "payload is not a valid protobuf LogsPayload.entries.fields{key}: string is not valid UTF-8",
    );
  });

  test("a wrong wire type names the field", () => {
    // field 1 of MetricsPayload is a message: a wrong wire type names it
    expect(fast("metrics", Uint8Array.from([0x08, 0x01]))).toBe(
      "payload is not a valid protobuf MetricsPayload.system: wire type 0 where a message was expected",
    );
    // unknown field 31 with wire type 3 (group) is refused
    expect(fast("metrics", Uint8Array.from([0xfb, 0x01]))).toBe(
      "payload is not a valid protobuf MetricsPayload.#31: invalid wire type 3",
    );
  });
});

const TREE = `syntax = "proto3";
enum Colour { COLOUR_UNSPECIFIED = 0; RED = 1; }
message Node {
  repeated Node children = 1;
  repeated int32 nums = 2;
  repeated fixed32 f32 = 3;
  repeated double f64 = 4;
  map<string, Node> named = 5;
  map<uint32, Colour> colours = 6;
  Colour colour = 7;
  string label = 8;
  bytes blob = 9;
  sint64 big = 2000;
}`;

test("recursive, packed, map and enum fields (own schema): same verdicts, depth limit of 16", () => {
  const root = protobuf.parse(TREE, { keepCase: true }).root;
  root.resolveAll();
  const Node = root.lookupType("Node");
  const verdict = (fn: () => void): string | null => {
    try {
      fn();
      return null;
    } catch (err) {
      if (isProtocolError(err)) return err.message;
      throw err;
    }
  };
  const nest = (depth: number): Record<string, unknown> =>
    depth === 0
      ? { nums: [1, -2, 300], f32: [7], f64: [0.5], label: "é", blob: new Uint8Array([0xff]), big: 5 }
      : { children: [nest(depth - 1)], named: { k: { colour: 1 } }, colours: { 3: 1 } };
  const shallow = Node.encode(Node.fromObject(nest(15))).finish();
  const deep = Node.encode(Node.fromObject(nest(17))).finish();
  expect(verdict(() => validateWire(Node, shallow))).toBeNull();
  expect(verdict(() => validateWire(Node, deep))).toContain("nested too deeply");
  const rnd = prng(7);
  for (const valid of [shallow, Node.encode(Node.fromObject(nest(3))).finish()]) {
    for (let i = 0; i < 300; i++) {
      const m = new Uint8Array(valid);
      m[Math.floor(rnd() * m.length)] = Math.floor(rnd() * 256);
      expect(verdict(() => validateWire(Node, m))).toBe(verdict(() => explainWire(Node, m)));
    }
  }
});
