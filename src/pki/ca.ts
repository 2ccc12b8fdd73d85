/**
 * The collector's certificate authority: signs agent/probe client certificates (from their CSRs) and the
 * gateway's server certificate. Created at first start (ECDSA P-256, 10 years) and kept in the database
 * (table gateway_ca, migration 010) so every gateway instance shares it; its private key is sealed with the
 * keyring (AES-256-GCM under the master key). An operator may supply their own CA instead
 * (gateway.tls.ca_file + ca_key_file).
 */
import "reflect-metadata"; // @peculiar/x509 (tsyringe) needs the Reflect metadata polyfill loaded first
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import * as x509 from "@peculiar/x509";
import type { Sql } from "postgres";
import { CollectorError } from "../lib/errors.ts";
import type { Logger } from "../observability/logger.ts";
import type { Keyring } from "../security/keyring.ts";
import { type Principal, principalUri } from "./identity.ts";

x509.cryptoProvider.set(crypto);

type ImportAlg = Parameters<typeof crypto.subtle.importKey>[2];
type SignAlg = { name: string; hash?: string };
const EC = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const KEY_CONTEXT = "gateway_ca.private_key";
const SKEW_MS = 5 * 60_000;

export interface IssuedCertificate {
  certPem: string;
  notAfter: Date;
  serial: string;
}

export interface CertificateAuthority {
  readonly certPem: string;
  readonly cert: x509.X509Certificate;
  /** Signs a client certificate for `principal` with the public key of `csrPem` (verified first). */
  issueClient(csrPem: string, principal: Principal, validityMs: number): Promise<IssuedCertificate>;
  /** A fresh key pair and a server certificate for `names` (DNS names and IP addresses). */
  issueServer(
    names: string[],
    validityMs: number,
  ): Promise<{ certPem: string; keyPem: string; notAfter: Date }>;
}

export interface CaOptions {
  /** Operator-supplied CA (PEM files); both or neither. */
  certFile?: string;
  keyFile?: string;
}

export async function loadOrCreateCa(
  sql: Sql,
  keyring: Keyring,
  log: Logger,
  opts: CaOptions = {},
): Promise<CertificateAuthority> {
  if (opts.certFile || opts.keyFile) return fromFiles(opts);
  const rows = await sql<{ cert_pem: string; key_sealed: Uint8Array }[]>`
    select cert_pem, key_sealed from gateway_ca where id = 1`;
  if (rows[0]) return fromStored(rows[0].cert_pem, keyring.open(rows[0].key_sealed, KEY_CONTEXT));
  const created = await createCa();
  const inserted = await sql`
    insert into gateway_ca (id, cert_pem, key_sealed)
    values (1, ${created.certPem}, ${keyring.seal(created.pkcs8, KEY_CONTEXT)})
    on conflict (id) do nothing returning id`;
  if (inserted.length > 0) {
    log.info({ subject: created.cert.subject, notAfter: created.cert.notAfter }, "created the collector CA");
    return makeCa(created.cert, created.key);
  }
  // another instance created it at the same moment: use theirs
  const again = await sql<{ cert_pem: string; key_sealed: Uint8Array }[]>`
    select cert_pem, key_sealed from gateway_ca where id = 1`;
  return fromStored(again[0]!.cert_pem, keyring.open(again[0]!.key_sealed, KEY_CONTEXT));
}

async function createCa(): Promise<{
  cert: x509.X509Certificate;
  key: CryptoKey;
  certPem: string;
  pkcs8: Uint8Array;
}> {
  const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=SecuMon Collector CA ${new Date(now).toISOString().slice(0, 10)}, O=SecuMon`,
    notBefore: new Date(now - SKEW_MS),
    notAfter: new Date(now + 10 * 365 * 86_400_000),
    keys,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { cert, key: keys.privateKey, certPem: cert.toString("pem"), pkcs8 };
}

async function fromStored(certPem: string, pkcs8: Uint8Array): Promise<CertificateAuthority> {
  const cert = new x509.X509Certificate(certPem);
  const key = await crypto.subtle.importKey("pkcs8", new Uint8Array(pkcs8), signingParams(cert), false, [
    "sign",
  ]);
  return makeCa(cert, key);
}

async function fromFiles(opts: CaOptions): Promise<CertificateAuthority> {
  if (!opts.certFile || !opts.keyFile) {
    throw new CollectorError(
      "CONFIG_INVALID",
      "gateway.tls.ca_file and gateway.tls.ca_key_file go together: set both to use your own CA, or neither to let the collector create one",
    );
  }
  let cert: x509.X509Certificate;
  let pkcs8: Uint8Array;
  try {
    cert = new x509.X509Certificate(readFileSync(opts.certFile, "utf8"));
    pkcs8 = pemBody(readFileSync(opts.keyFile, "utf8"), "PRIVATE KEY");
  } catch (err) {
    throw new CollectorError(
      "CONFIG_INVALID",
      `cannot read the CA from gateway.tls.ca_file/ca_key_file (${String(err).slice(0, 160)}); they must be a PEM certificate and a PEM PKCS#8 private key ("BEGIN PRIVATE KEY")`,
    );
  }
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey("pkcs8", new Uint8Array(pkcs8), signingParams(cert), false, ["sign"]);
  } catch (err) {
    throw new CollectorError(
      "CONFIG_INVALID",
      `gateway.tls.ca_key_file is not the private key of ca_file, or not ECDSA/RSA (${String(err).slice(0, 120)})`,
    );
  }
  return makeCa(cert, key);
}

function signingParams(cert: x509.X509Certificate): ImportAlg {
  const alg = cert.publicKey.algorithm as { name: string; namedCurve?: string };
  if (alg.name === "ECDSA") return { name: "ECDSA", namedCurve: alg.namedCurve ?? "P-256" };
  return { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
}

function signingAlgorithm(key: CryptoKey): SignAlg {
  return key.algorithm.name === "ECDSA" ? { name: "ECDSA", hash: "SHA-256" } : { name: "RSASSA-PKCS1-v1_5" };
}

function makeCa(cert: x509.X509Certificate, key: CryptoKey): CertificateAuthority {
  const certPem = cert.toString("pem");
  const alg = signingAlgorithm(key);
  return {
    certPem,
    cert,
    async issueClient(csrPem, principal, validityMs) {
      const publicKey = await verifiedCsrKey(csrPem);
      const now = Date.now();
      const notAfter = new Date(Math.min(now + validityMs, cert.notAfter.getTime()));
      const sn = serial();
      const issued = await x509.X509CertificateGenerator.create({
        serialNumber: sn,
        subject: `CN=${principal.id}, O=${principal.tenantId}, OU=${principal.kind}`,
        issuer: cert.subject,
        notBefore: new Date(now - SKEW_MS),
        notAfter,
        publicKey,
        signingKey: key,
        signingAlgorithm: alg,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
          new x509.SubjectAlternativeNameExtension([{ type: "url", value: principalUri(principal) }], false),
          await x509.AuthorityKeyIdentifierExtension.create(cert, false),
        ],
      });
      return { certPem: issued.toString("pem"), notAfter, serial: sn };
    },
    async issueServer(names, validityMs) {
      const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
      const now = Date.now();
      const notAfter = new Date(Math.min(now + validityMs, cert.notAfter.getTime()));
      const san = names.map((n) => ({ type: isIp(n) ? ("ip" as const) : ("dns" as const), value: n }));
      const issued = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${names[0] ?? "secumon-gateway"}, O=SecuMon`,
        issuer: cert.subject,
        notBefore: new Date(now - SKEW_MS),
        notAfter,
        publicKey: keys.publicKey,
        signingKey: key,
        signingAlgorithm: alg,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
            true,
          ),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
          new x509.SubjectAlternativeNameExtension(san, false),
          await x509.AuthorityKeyIdentifierExtension.create(cert, false),
        ],
      });
      const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
      return { certPem: issued.toString("pem"), keyPem: toPem(pkcs8, "PRIVATE KEY"), notAfter };
    },
  };
}

/** Parses and verifies a CSR; returns its public key. Throws BAD_REQUEST with what is wrong. */
export async function verifiedCsrKey(csrPem: string): Promise<x509.PublicKey> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new CollectorError(
      "BAD_REQUEST",
      'csr_pem is not a PEM PKCS#10 certificate request ("-----BEGIN CERTIFICATE REQUEST-----")',
    );
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok)
    throw new CollectorError("BAD_REQUEST", "the CSR's signature does not verify with its own public key");
  const alg = csr.publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  const accepted =
    (alg.name === "ECDSA" && (alg.namedCurve === "P-256" || alg.namedCurve === "P-384")) ||
    (alg.name.startsWith("RSA") && (alg.modulusLength ?? 0) >= 2048) ||
    alg.name === "Ed25519";
  if (!accepted) {
    throw new CollectorError(
      "BAD_REQUEST",
      `CSR key ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ""} is not accepted; use ECDSA P-256/P-384, Ed25519 or RSA ≥ 2048 bits`,
    );
  }
  return csr.publicKey;
}

/** A key pair and a CSR, the way an agent makes them (simulator, tests). */
export async function generateKeyAndCsr(name = "secumon-agent"): Promise<{ keyPem: string; csrPem: string }> {
  const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${name}`,
    keys,
    signingAlgorithm: EC,
  });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { keyPem: toPem(pkcs8, "PRIVATE KEY"), csrPem: csr.toString("pem") };
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  return b.toString("hex");
}

function isIp(s: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) || s.includes(":");
}

function pemBody(pem: string, label: string): Uint8Array {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END ${label}-----`).exec(pem);
  if (!m) throw new Error(`no "${label}" PEM block`);
  return Buffer.from(m[1]!.replace(/\s+/g, ""), "base64");
}

export function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der)
    .toString("base64")
    .replace(/(.{64})/g, "$1\n");
  return `-----BEGIN ${label}-----\n${b64.trimEnd()}\n-----END ${label}-----\n`;
}
