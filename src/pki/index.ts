/** The collector PKI: its CA, client/server certificate issuance, enrollment tokens, certificate identities. */
export {
  type CaOptions,
  type CertificateAuthority,
  generateKeyAndCsr,
  type IssuedCertificate,
  loadOrCreateCa,
  toPem,
  verifiedCsrKey,
} from "./ca.ts";
export {
  type Principal,
  type PrincipalKind,
  parsePrincipalUri,
  principalFromSubjectAltName,
  principalUri,
} from "./identity.ts";
export {
  generateEnrollmentToken,
  hashEnrollmentToken,
  looksLikeEnrollmentToken,
  TOKEN_PREFIX,
} from "./tokens.ts";
