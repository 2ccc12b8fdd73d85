/**
 * The reference walker of the strict wire check (rules in wire.ts), resolving protobufjs reflection per field and
 * building the field path as it goes. wire.ts runs a fast allocation-free walker first and, only when that one
 * refuses the bytes, re-walks them here to throw the error with the path of the offending field.
 * Both must accept and refuse exactly the same inputs (wire.test.ts checks it on mutated payloads).
 */
import type protobuf from "protobufjs";
import { ProtocolError } from "./errors.ts";

export const VARINT = 0;
export const I64 = 1;
export const LEN = 2;
export const I32 = 5;

export const SCALAR_WIRE: Record<string, number> = {
  int32: VARINT,
  int64: VARINT,
  uint32: VARINT,
  uint64: VARINT,
  sint32: VARINT,
  sint64: VARINT,
  bool: VARINT,
  fixed64: I64,
  sfixed64: I64,
  double: I64,
  fixed32: I32,
  sfixed32: I32,
  float: I32,
  string: LEN,
  bytes: LEN,
};

const utf8 = new TextDecoder("utf-8", { fatal: true });
export const MAX_DEPTH = 16;

/** Throws ProtocolError("malformed_protobuf") naming the offending field when `bytes` is not a well-formed `type`. */
export function explainWire(type: protobuf.Type, bytes: Uint8Array): void {
  const r = new Cursor(bytes);
  walkMessage(type, r, bytes.byteLength, 0, type.name);
}

class Cursor {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  varint(end: number, path: string): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) fail(path, "truncated varint");
      const b = this.buf[this.pos++]!;
      if (shift < 28) result |= (b & 0x7f) << shift;
      else if (shift < 53) result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return shift < 28 ? result >>> 0 : result;
      shift += 7;
    }
    fail(path, "varint longer than 10 bytes");
  }

  skip(n: number, end: number, path: string): void {
    if (n > end - this.pos) fail(path, "field runs past the end of the message (truncated)");
    this.pos += n;
  }
}

export function fail(path: string, what: string): never {
  throw new ProtocolError("malformed_protobuf", `payload is not a valid protobuf ${path}: ${what}`);
}

function walkMessage(type: protobuf.Type, r: Cursor, end: number, depth: number, path: string): void {
  if (depth > MAX_DEPTH) fail(path, "nested too deeply");
  const byId = type.fieldsById;
  while (r.pos < end) {
    const tag = r.varint(end, path);
    const id = Math.floor(tag / 8);
    const wt = tag & 7;
    if (id === 0) fail(path, "field number 0");
    const field = byId[id];
    if (!field) {
      skipUnknown(r, wt, end, `${path}.#${id}`);
      continue;
    }
    const fpath = `${path}.${field.name}`;
    if ((field as unknown as protobuf.MapField).map) {
      if (wt !== LEN) fail(fpath, `wire type ${wt} where a map entry was expected`);
      const len = r.varint(end, fpath);
      if (len > end - r.pos) fail(fpath, "map entry runs past the end (truncated)");
      walkMapEntry(field as unknown as protobuf.MapField, r, r.pos + len, fpath);
      continue;
    }
    const resolved = field.resolvedType;
    if (resolved && "fieldsById" in resolved) {
      if (wt !== LEN) fail(fpath, `wire type ${wt} where a message was expected`);
      const len = r.varint(end, fpath);
      if (len > end - r.pos) fail(fpath, "message runs past the end (truncated)");
      const sub = r.pos + len;
      walkMessage(resolved as protobuf.Type, r, sub, depth + 1, fpath);
      if (r.pos !== sub) fail(fpath, "message length mismatch");
      continue;
    }
    const expected = resolved ? VARINT : SCALAR_WIRE[field.type];
    if (expected === undefined) fail(fpath, `unsupported field type ${field.type}`);
    if (wt === expected) {
      readScalar(r, wt, end, fpath, field.type === "string");
    } else if (field.repeated && wt === LEN && expected !== LEN) {
      readPacked(r, expected, end, fpath);
    } else {
      fail(fpath, `wire type ${wt} where ${field.type} was expected (wrong message type?)`);
    }
  }
  if (r.pos !== end) fail(path, "message length mismatch");
}

function walkMapEntry(field: protobuf.MapField, r: Cursor, end: number, path: string): void {
  const keyWire = SCALAR_WIRE[field.keyType];
  const valueWire = field.resolvedType
    ? "fieldsById" in field.resolvedType
      ? LEN
      : VARINT
    : SCALAR_WIRE[field.type];
  while (r.pos < end) {
    const tag = r.varint(end, path);
    const id = Math.floor(tag / 8);
    const wt = tag & 7;
    if (id === 1) {
      if (wt !== keyWire) fail(path, `map key has wire type ${wt}`);
      readScalar(r, wt, end, `${path}{key}`, field.keyType === "string");
    } else if (id === 2) {
      if (wt !== valueWire) fail(path, `map value has wire type ${wt}`);
      if (field.resolvedType && "fieldsById" in field.resolvedType) {
        const len = r.varint(end, path);
        if (len > end - r.pos) fail(path, "map value runs past the end (truncated)");
        const sub = r.pos + len;
        walkMessage(field.resolvedType as protobuf.Type, r, sub, 1, `${path}{value}`);
      } else {
        readScalar(r, wt, end, `${path}{value}`, field.type === "string");
      }
    } else {
      skipUnknown(r, wt, end, path);
    }
  }
  if (r.pos !== end) fail(path, "map entry length mismatch");
}

function readScalar(r: Cursor, wt: number, end: number, path: string, isString: boolean): void {
  switch (wt) {
    case VARINT:
      r.varint(end, path);
      return;
    case I64:
      r.skip(8, end, path);
      return;
    case I32:
      r.skip(4, end, path);
      return;
    case LEN: {
      const len = r.varint(end, path);
      const start = r.pos;
      r.skip(len, end, path);
      if (isString && len > 0) {
        try {
          utf8.decode(r.buf.subarray(start, start + len));
        } catch {
          fail(path, "string is not valid UTF-8");
        }
      }
      return;
    }
  }
}

function readPacked(r: Cursor, elemWire: number, end: number, path: string): void {
  const len = r.varint(end, path);
  if (len > end - r.pos) fail(path, "packed field runs past the end (truncated)");
  const sub = r.pos + len;
  if (elemWire === VARINT) {
    while (r.pos < sub) r.varint(sub, path);
  } else {
    const size = elemWire === I64 ? 8 : 4;
    if (len % size !== 0) fail(path, "packed fixed-size field has a partial element");
    r.pos = sub;
  }
}

function skipUnknown(r: Cursor, wt: number, end: number, path: string): void {
  switch (wt) {
    case VARINT:
    case I64:
    case I32:
    case LEN:
      readScalar(r, wt, end, path, false);
      return;
    default:
      fail(path, `invalid wire type ${wt}`);
  }
}
