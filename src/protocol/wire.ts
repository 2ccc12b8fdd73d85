/**
 * Strict structural check of protobuf bytes against a message type, without building objects.
 * protobufjs' decoder trusts the field number and ignores the wire type, so a valid protobuf of the *wrong*
 * message type, or a truncated one, can decode into nonsense. This walker refuses:
 * truncated varints/lengths, lengths past the end, wire types 3/4/6/7 (groups, invalid), field number 0,
 * a known field with the wrong wire type (at any depth), invalid UTF-8 in string fields, nesting deeper than 16.
 * Unknown field numbers with a valid wire type are skipped (forward compatibility with newer agents).
 *
 * It runs on every telemetry batch the gateway accepts, so it is built for speed: each message type is compiled
 * once into a plan (field number → wire type, nested plan, packed/string flags), and the walk allocates nothing
 * and builds no field paths. When it refuses the bytes, wire-explain.ts (the same rules, walked with protobufjs
 * reflection and paths) re-walks them to throw the error naming the offending field.
 */
import type protobuf from "protobufjs";
import { ProtocolError } from "./errors.ts";
import { explainWire, I32, I64, LEN, MAX_DEPTH, SCALAR_WIRE, VARINT } from "./wire-explain.ts";

/** Throws ProtocolError("malformed_protobuf") when `bytes` is not a well-formed `type`. */
export function validateWire(type: protobuf.Type, bytes: Uint8Array): void {
  if (wireOk(type, bytes)) return;
  explainWire(type, bytes);
  // Unreachable while both walkers apply the same rules (wire.test.ts compares them).
  throw new ProtocolError(
    "malformed_protobuf",
    `payload is not a valid protobuf ${type.name}: refused by the strict wire check`,
  );
}

/** The fast walk alone: true when `bytes` is a well-formed `type` (exported for the equivalence test). */
export function wireOk(type: protobuf.Type, bytes: Uint8Array): boolean {
  const plan = planFor(type);
  S.buf = bytes;
  S.pos = 0;
  try {
    return walk(plan, bytes.byteLength, 0);
  } finally {
    S.buf = EMPTY;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Plans, compiled once per message type.

const FIELD_MESSAGE = 1;
const FIELD_MAP = 2;
const FIELD_SCALAR = 3;
const FIELD_UNSUPPORTED = 4;
/** Field numbers below this are looked up in an array, the rare larger ones in a Map. */
const DENSE_LIMIT = 1024;

class FieldPlan {
  kind = FIELD_UNSUPPORTED;
  /** expected wire type of a scalar (enums: varint), -1 when none matches */
  wire = -1;
  isString = false;
  /** repeated non-LEN scalar: a LEN record is a packed run */
  packed = false;
  message: MessagePlan | null = null;
  keyWire = -1;
  keyString = false;
  valueWire = -1;
  valueString = false;
  valueMessage: MessagePlan | null = null;
}

class MessagePlan {
  dense: (FieldPlan | undefined)[] = [];
  sparse = new Map<number, FieldPlan>();
}

const plans = new WeakMap<protobuf.Type, MessagePlan>();

function planFor(type: protobuf.Type): MessagePlan {
  let plan = plans.get(type);
  if (plan) return plan;
  plan = new MessagePlan();
  plans.set(type, plan); // before the fields: recursive types refer to themselves
  const byId = type.fieldsById;
  for (const key of Object.keys(byId)) {
    const id = Number(key);
    const f = compileField(byId[id]!);
    if (id < DENSE_LIMIT) {
      while (plan.dense.length <= id) plan.dense.push(undefined);
      plan.dense[id] = f;
    } else {
      plan.sparse.set(id, f);
    }
  }
  return plan;
}

const isMessageType = (t: protobuf.ReflectionObject | null): t is protobuf.Type =>
  t !== null && "fieldsById" in t;

function compileField(field: protobuf.Field): FieldPlan {
  const f = new FieldPlan();
  const resolved = field.resolvedType;
  if ((field as unknown as protobuf.MapField).map) {
    const map = field as unknown as protobuf.MapField;
    f.kind = FIELD_MAP;
    f.keyWire = SCALAR_WIRE[map.keyType] ?? -1;
    f.keyString = map.keyType === "string";
    f.valueWire = resolved ? (isMessageType(resolved) ? LEN : VARINT) : (SCALAR_WIRE[field.type] ?? -1);
    f.valueString = field.type === "string";
    f.valueMessage = isMessageType(resolved) ? planFor(resolved) : null;
    return f;
  }
  if (isMessageType(resolved)) {
    f.kind = FIELD_MESSAGE;
    f.message = planFor(resolved);
    return f;
  }
  const expected = resolved ? VARINT : SCALAR_WIRE[field.type];
  if (expected === undefined) return f; // FIELD_UNSUPPORTED: refused whatever its wire type
  f.kind = FIELD_SCALAR;
  f.wire = expected;
  f.isString = field.type === "string";
  f.packed = field.repeated && expected !== LEN;
  return f;
}

// ---------------------------------------------------------------------------------------------------------------
// The walk: one module-level state object (its monomorphic properties are faster in JSC than module `let`
// bindings), booleans instead of exceptions, no path strings. Not reentrant; nothing in it calls back out.

const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder("utf-8", { fatal: true });
const S = { buf: EMPTY as Uint8Array, pos: 0 };

/** The varint at `S.pos` (same arithmetic as wire-explain.ts), or -1 when truncated or longer than 10 bytes. */
function varint(end: number): number {
  if (S.pos < end) {
    const b = S.buf[S.pos]!;
    if (b < 0x80) {
      S.pos++;
      return b;
    }
  }
  let result = 0;
  let shift = 0;
  for (let i = 0; i < 10; i++) {
    if (S.pos >= end) return -1;
    const b = S.buf[S.pos++]!;
    if (shift < 28) result |= (b & 0x7f) << shift;
    else if (shift < 53) result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return shift < 28 ? result >>> 0 : result;
    shift += 7;
  }
  return -1;
}

function skipVarint(end: number): boolean {
  const b = S.buf;
  let p = S.pos;
  const stop = Math.min(end, p + 10);
  while (p < stop) {
    if (b[p++]! < 0x80) {
      S.pos = p;
      return true;
    }
  }
  return false;
}

function walk(plan: MessagePlan, end: number, depth: number): boolean {
  if (depth > MAX_DEPTH) return false;
  const dense = plan.dense;
  while (S.pos < end) {
    const tag = varint(end);
    if (tag < 0) return false;
    const id = tag < 0x80000000 ? tag >>> 3 : Math.floor(tag / 8);
    const wt = tag & 7;
    if (id === 0) return false;
    const f = id < dense.length ? dense[id] : plan.sparse.get(id);
    if (f === undefined) {
      if (!skipUnknown(wt, end)) return false;
      continue;
    }
    switch (f.kind) {
      case FIELD_SCALAR:
        if (wt === f.wire) {
          if (wt === I64) {
            // the most common scalar (double), inlined
            if (8 > end - S.pos) return false;
            S.pos += 8;
          } else if (!scalar(wt, end, f.isString)) {
            return false;
          }
        } else if (f.packed && wt === LEN) {
          if (!packed(f.wire, end)) return false;
        } else {
          return false;
        }
        break;
      case FIELD_MESSAGE: {
        if (wt !== LEN) return false;
        const len = varint(end);
        if (len < 0 || len > end - S.pos) return false;
        const sub = S.pos + len;
        if (!walk(f.message!, sub, depth + 1) || S.pos !== sub) return false;
        break;
      }
      case FIELD_MAP: {
        if (wt !== LEN) return false;
        const len = varint(end);
        if (len < 0 || len > end - S.pos) return false;
        if (!mapEntry(f, S.pos + len)) return false;
        break;
      }
      default:
        return false;
    }
  }
  return S.pos === end;
}

function mapEntry(f: FieldPlan, end: number): boolean {
  while (S.pos < end) {
    const tag = varint(end);
    if (tag < 0) return false;
    const id = Math.floor(tag / 8);
    const wt = tag & 7;
    if (id === 1) {
      if (wt !== f.keyWire || !scalar(wt, end, f.keyString)) return false;
    } else if (id === 2) {
      if (wt !== f.valueWire) return false;
      if (f.valueMessage) {
        const len = varint(end);
        if (len < 0 || len > end - S.pos) return false;
        if (!walk(f.valueMessage, S.pos + len, 1)) return false;
      } else if (!scalar(wt, end, f.valueString)) {
        return false;
      }
    } else if (!skipUnknown(wt, end)) {
      return false;
    }
  }
  return S.pos === end;
}

function scalar(wt: number, end: number, isString: boolean): boolean {
  switch (wt) {
    case VARINT:
      return skipVarint(end);
    case I64:
      if (8 > end - S.pos) return false;
      S.pos += 8;
      return true;
    case I32:
      if (4 > end - S.pos) return false;
      S.pos += 4;
      return true;
    case LEN: {
      const len = varint(end);
      if (len < 0 || len > end - S.pos) return false;
      const start = S.pos;
      S.pos += len;
      return !isString || len === 0 || utf8Ok(start, S.pos);
    }
    default:
      return true;
  }
}

/** ASCII is checked in place; anything else goes through the same fatal TextDecoder as wire-explain.ts. */
function utf8Ok(start: number, stop: number): boolean {
  const b = S.buf;
  let high = 0;
  for (let i = start; i < stop; i++) high |= b[i]!;
  if (high < 0x80) return true;
  try {
    utf8.decode(b.subarray(start, stop));
    return true;
  } catch {
    return false;
  }
}

function packed(elemWire: number, end: number): boolean {
  const len = varint(end);
  if (len < 0 || len > end - S.pos) return false;
  const sub = S.pos + len;
  if (elemWire === VARINT) {
    while (S.pos < sub) if (!skipVarint(sub)) return false;
    return true;
  }
  if (len % (elemWire === I64 ? 8 : 4) !== 0) return false;
  S.pos = sub;
  return true;
}

function skipUnknown(wt: number, end: number): boolean {
  return (wt === VARINT || wt === I64 || wt === I32 || wt === LEN) && scalar(wt, end, false);
}
