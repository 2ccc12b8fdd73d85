/**
 * The secumon.v1 wire protocol: payload codecs, bounded decompression, strict wire validation.
 * Decoded payloads use the .proto (snake_case) field names; see payload.ts for the exact conventions.
 */
export { COMPRESSIONS, type Compression, compress, decompressBounded, isCompression } from "./compression.ts";
export { isProtocolError, ProtocolError, type ProtocolErrorReason } from "./errors.ts";
export { InvalidMessage, isInvalidMessage, serviceDefinition } from "./grpc.ts";
export {
  type DecodeOptions,
  decodePayload,
  encodePayload,
  logLevelName,
  PAYLOAD_MESSAGE,
  payloadType,
  validatePayload,
} from "./payload.ts";
export { messageType, protoRoot } from "./schema.ts";
export type * from "./types.ts";
export { validateWire } from "./wire.ts";
