/** Why a batch or message was refused: the gateway maps it to INVALID_ARGUMENT or RESOURCE_EXHAUSTED. */
export type ProtocolErrorReason =
  | "unknown_compression"
  | "size_mismatch"
  | "too_large"
  | "corrupt_compressed"
  | "malformed_protobuf"
  | "unknown_kind";

export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
  constructor(
    readonly reason: ProtocolErrorReason,
    message: string,
  ) {
    super(message);
  }
}

export const isProtocolError = (e: unknown): e is ProtocolError => e instanceof ProtocolError;
