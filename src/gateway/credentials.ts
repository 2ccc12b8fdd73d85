/**
 * TLS for the gateway: the server certificate, and the collector CA as the trust root for client certificates.
 * Client certificates are *requested but not required* at the TLS layer (Enroll runs before the agent has
 * one); every other RPC requires a certificate that verified against the CA (auth.ts reads it through
 * getAuthContext(), which grpc-js fills only for a verified peer). grpc-js's createSsl cannot express "request,
 * don't require" (its false means "don't even ask"), and its certificate-provider credentials fail the TLS
 * handshake under Bun, so this is a ServerCredentials with Node's own options: requestCert, no rejection.
 */
import { ServerCredentials } from "@grpc/grpc-js";

class RequestClientCertCredentials extends ServerCredentials {
  constructor(caPem: string, certPem: string, keyPem: string) {
    super(
      { requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.2" },
      { ca: Buffer.from(caPem), cert: Buffer.from(certPem), key: Buffer.from(keyPem) },
    );
  }
  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

export function gatewayCredentials(caPem: string, certPem: string, keyPem: string): ServerCredentials {
  return new RequestClientCertCredentials(caPem, certPem, keyPem);
}
