/**
 * The `secumon.v1` protocol loaded with protobufjs from the .proto sources embedded in the binary (text imports).
 * Field names keep the .proto spelling (snake_case, `keepCase`), so decoded objects match the database columns.
 */
import protobuf from "protobufjs";
import agentProto from "../../proto/secumon/v1/agent.proto" with { type: "text" };
import commonProto from "../../proto/secumon/v1/common.proto" with { type: "text" };
import probeProto from "../../proto/secumon/v1/probe.proto" with { type: "text" };
import telemetryProto from "../../proto/secumon/v1/telemetry.proto" with { type: "text" };

export const PROTO_SOURCES: Record<string, string> = {
  "secumon/v1/telemetry.proto": telemetryProto,
  "secumon/v1/common.proto": commonProto,
  "secumon/v1/agent.proto": agentProto,
  "secumon/v1/probe.proto": probeProto,
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
