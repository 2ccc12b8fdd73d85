/**
 * The `secumon.v1` protocol loaded with protobufjs from the .proto sources embedded in the binary (text imports).
 * Field names keep the .proto spelling (snake_case, `keepCase`), so decoded objects match the database columns.
 */
import protobuf from "protobufjs";
import telemetryProto from "../../proto/secumon/v1/telemetry.proto" with { type: "text" };

export const PROTO_SOURCES: Record<string, string> = {
  "secumon/v1/telemetry.proto": telemetryProto,
};

let cached: protobuf.Root | null = null;

/** The resolved root holding every secumon.v1 message, enum and service. */
export function protoRoot(): protobuf.Root {
  if (cached) return cached;
  const root = new protobuf.Root();
  for (const text of Object.values(PROTO_SOURCES)) protobuf.parse(text, root, { keepCase: true });
  root.resolveAll();
  cached = root;
  return root;
}

export function messageType(name: string): protobuf.Type {
  return protoRoot().lookupType(`secumon.v1.${name}`);
}
