/** gRPC status errors the gateway answers with; every message says what the caller should do next. */
import { status } from "@grpc/grpc-js";

export { status as Code };

export class GatewayError extends Error {
  override readonly name = "GatewayError";
  constructor(
    readonly code: status,
    readonly details: string,
    /** short label for metrics/logs ("bad_token", "revoked", …) */
    readonly reason: string,
  ) {
    super(details);
  }
}

export const isGatewayError = (e: unknown): e is GatewayError => e instanceof GatewayError;

export const unauthenticated = (details: string, reason: string) =>
  new GatewayError(status.UNAUTHENTICATED, details, reason);
export const permissionDenied = (details: string, reason: string) =>
  new GatewayError(status.PERMISSION_DENIED, details, reason);
export const invalidArgument = (details: string, reason: string) =>
  new GatewayError(status.INVALID_ARGUMENT, details, reason);
export const alreadyExists = (details: string, reason: string) =>
  new GatewayError(status.ALREADY_EXISTS, details, reason);
export const exhausted = (details: string, reason: string) =>
  new GatewayError(status.RESOURCE_EXHAUSTED, details, reason);
export const unavailable = (details: string, reason: string) =>
  new GatewayError(status.UNAVAILABLE, details, reason);

/** What a grpc-js callback or `emit("error")` takes. */
export function toServiceError(err: GatewayError): { code: status; details: string; message: string } {
  return { code: err.code, details: err.details, message: err.details };
}
