/**
 * grpc-js service definitions built from the protobufjs root (no code generation, no proto-loader).
 * Messages cross the wire as plain objects with the .proto field names (snake_case); 64-bit integers are
 * numbers, enums numbers, bytes Uint8Array, unset message fields null/absent.
 */
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import type protobuf from "protobufjs";
import { isProtocolError } from "./errors.ts";
import { protoRoot } from "./schema.ts";
import { validateWire } from "./wire.ts";

/**
 * What a request deserializer yields for bytes that are not a valid message of the expected type. grpc-js
 * answers a *throwing* deserializer with INTERNAL; returning this instead lets the handler answer
 * INVALID_ARGUMENT with the reason.
 */
export class InvalidMessage {
  constructor(readonly reason: string) {}
}

export const isInvalidMessage = (m: unknown): m is InvalidMessage => m instanceof InvalidMessage;

const TO_OBJECT: protobuf.IConversionOptions = {
  longs: Number,
  enums: Number,
  bytes: Uint8Array as unknown as protobuf.IConversionOptions["bytes"],
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: true,
};

function codec(type: protobuf.Type) {
  return {
    serialize: (obj: object): Buffer => {
      // already serialized (the simulator's reused batches): sent as is
      if (obj instanceof Uint8Array) return Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength);
      const bytes = type.encode(type.fromObject(obj as Record<string, unknown>)).finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    deserialize: (buf: Buffer): object => {
      try {
        validateWire(type, buf);
        return type.toObject(type.decode(buf), TO_OBJECT);
      } catch (err) {
        return new InvalidMessage(isProtocolError(err) ? err.message : `not a valid ${type.name}`);
      }
    },
  };
}

const cache = new Map<string, ServiceDefinition>();

/** `serviceDefinition("AgentService")` → a definition for grpc-js `server.addService` / `makeGenericClientConstructor`. */
export function serviceDefinition(name: "AgentService" | "ProbeService"): ServiceDefinition {
  const hit = cache.get(name);
  if (hit) return hit;
  const svc = protoRoot().lookupService(`secumon.v1.${name}`);
  svc.resolveAll();
  const def: Record<string, MethodDefinition<object, object>> = {};
  for (const m of svc.methodsArray) {
    const req = codec(m.resolvedRequestType!);
    const res = codec(m.resolvedResponseType!);
    def[m.name] = {
      path: `/secumon.v1.${name}/${m.name}`,
      requestStream: !!m.requestStream,
      responseStream: !!m.responseStream,
      requestSerialize: req.serialize,
      requestDeserialize: req.deserialize,
      responseSerialize: res.serialize,
      responseDeserialize: res.deserialize,
      originalName: m.name,
    };
  }
  cache.set(name, def);
  return def;
}
