/** Client-side helpers for gateway tests: raw streams, expected refusals, hostile certificates. */
import "reflect-metadata"; // before @peculiar/x509
import type { Client, ClientDuplexStream, ServiceError } from "@grpc/grpc-js";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import * as x509 from "@peculiar/x509";
import { generateKeyAndCsr, toPem } from "../../src/pki/ca.ts";
import type { Identity } from "../../src/simulator/client.ts";

export interface Ack {
  batch_id: string;
  code: number;
  message: string;
  retry_after_ms: number;
}

export async function refusal(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error("expected the call to be refused, but it succeeded");
}

/** Opens a bidi telemetry stream; `next()` resolves the next ack, `closed` resolves with the final status. */
export function openStream(client: Client, method: string) {
  const call = (client as unknown as Record<string, () => ClientDuplexStream<object, Ack>>)[method]!.call(
    client,
  );
  const acks: Ack[] = [];
  const waiters: ((a: Ack) => void)[] = [];
  call.on("data", (a: Ack) => {
    const w = waiters.shift();
    if (w) w(a);
    else acks.push(a);
  });
  const closed = new Promise<{ code: number; details: string }>((resolve) => {
    call.on("error", (e: ServiceError) => resolve({ code: e.code, details: e.details }));
    call.on("status", (s: { code: number; details: string }) => {
      if (s.code === 0) resolve({ code: 0, details: s.details });
    });
  });
  return {
    call,
    send: (b: object) => call.write(b),
    next: (): Promise<Ack> => {
      const a = acks.shift();
      return a ? Promise.resolve(a) : new Promise((r) => waiters.push(r));
    },
    closed,
    end: () => call.end(),
  };
}

x509.cryptoProvider.set(crypto);
const EC = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

/** A self-made CA issuing a client certificate that *names* an existing principal (forged identity). */
export async function foreignIdentity(like: Identity): Promise<Identity> {
  const caKeys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=Evil CA",
    keys: caKeys,
    signingAlgorithm: EC,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  return issueWith(
    ca,
    caKeys.privateKey,
    like,
    new Date(Date.now() - 60_000),
    new Date(Date.now() + 86_400_000),
  );
}

/** A certificate from the real collector CA key that has already expired. */
export async function expiredIdentity(
  caCert: x509.X509Certificate,
  caKey: CryptoKey,
  like: Identity,
): Promise<Identity> {
  return issueWith(
    caCert,
    caKey,
    like,
    new Date(Date.now() - 2 * 86_400_000),
    new Date(Date.now() - 86_400_000),
  );
}

/**
 * A certificate from the real collector CA key that expires `ms` from now and became valid `sinceMs` ago
 * (seconds precision in X.509).
 */
export async function shortLivedIdentity(
  caCert: x509.X509Certificate,
  caKey: CryptoKey,
  like: Identity,
  ms: number,
  sinceMs = 60_000,
): Promise<Identity> {
  return issueWith(caCert, caKey, like, new Date(Date.now() - sinceMs), new Date(Date.now() + ms));
}

async function issueWith(
  ca: x509.X509Certificate,
  caKey: CryptoKey,
  like: Identity,
  notBefore: Date,
  notAfter: Date,
): Promise<Identity> {
  const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${like.id}`,
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: EC,
    extensions: [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: "url", value: `urn:secumon:${like.kind}:${like.tenantId}:${like.id}` },
      ]),
    ],
  });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { ...like, certPem: cert.toString("pem"), keyPem: toPem(pkcs8, "PRIVATE KEY") };
}

export { generateKeyAndCsr };

/** Every status event published for one agent (EVENTS stream), in order. */
export async function agentEvents(nc: NatsConnection, tenant: string, id: string): Promise<string[]> {
  const c = await jetstream(nc).consumers.get("EVENTS", {
    filter_subjects: [`secumon.events.agent.${tenant}.${id}`],
  });
  const out: string[] = [];
  for (;;) {
    const m = await c.next({ expires: 1000 });
    if (!m) return out;
    out.push(m.json<{ status: string }>().status);
  }
}
