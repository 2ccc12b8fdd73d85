/**
 * A minimal SecuMon agent/probe client on grpc-js: enrollment (server TLS) and mTLS clients for the
 * AgentService/ProbeService. Used by the simulator, the tests and the benchmark.
 */
import { isIP } from "node:net";
import { checkServerIdentity } from "node:tls";
import { type Client, credentials, makeGenericClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { generateKeyAndCsr } from "../pki/ca.ts";
import { serviceDefinition } from "../protocol/grpc.ts";

export type ServiceName = "AgentService" | "ProbeService";

export interface Identity {
  kind: "agent" | "probe";
  id: string;
  tenantId: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  expiresAt: number;
}

const ctors = new Map<ServiceName, ReturnType<typeof makeGenericClientConstructor>>();

export interface ClientOptions {
  /** Client certificate (mTLS); omit for Enroll. */
  identity?: { certPem: string; keyPem: string };
  /** Override the TLS server name (when dialing an address not in the certificate). */
  serverName?: string;
  options?: Record<string, string | number>;
}

export function makeClient(
  service: ServiceName,
  address: string,
  caPem: string,
  o: ClientOptions = {},
): Client {
  let ctor = ctors.get(service);
  if (!ctor) {
    ctor = makeGenericClientConstructor(serviceDefinition(service), service);
    ctors.set(service, ctor);
  }
  // Bun's TLS refuses an IP address as the SNI server name (Node ignores it), and grpc-js sends the target's host
  // as SNI. Dialing an IP, we send a placeholder SNI and still verify the certificate against that IP (its SAN).
  const ip = o.serverName ? "" : ipHost(address);
  const creds = credentials.createSsl(
    Buffer.from(caPem),
    o.identity ? Buffer.from(o.identity.keyPem) : null,
    o.identity ? Buffer.from(o.identity.certPem) : null,
    ip ? { checkServerIdentity: (_name, cert) => checkServerIdentity(ip, cert) } : {},
  );
  const nameOverride = o.serverName || (ip ? IP_SNI_PLACEHOLDER : "");
  return new ctor(address, creds, {
    ...(nameOverride ? { "grpc.ssl_target_name_override": nameOverride } : {}),
    "grpc.max_send_message_length": 16 * 1024 * 1024,
    ...o.options,
  });
}

const IP_SNI_PLACEHOLDER = "secumon-gateway.invalid";

/** The host of `host:port` / `[v6]:port` when it is an IP literal, else "". */
export function ipHost(address: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(address) ?? /^([^:]+)(?::\d+)?$/.exec(address);
  const host = m?.[1] ?? "";
  return isIP(host) ? host : "";
}

/** Calls a unary method by name; resolves the response or rejects with the ServiceError. */
export function unaryCall<Res = Record<string, unknown>>(
  client: Client,
  method: string,
  req: object,
  deadlineMs = 15_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    type UnaryFn = (
      req: object,
      opts: { deadline: number },
      cb: (err: ServiceError | null, res: Res) => void,
    ) => unknown;
    const fn = (client as unknown as Record<string, UnaryFn>)[method];
    if (!fn) return reject(new Error(`no method ${method}`));
    fn.call(client, req, { deadline: Date.now() + deadlineMs }, (err: ServiceError | null, res: Res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

export interface EnrollOptions {
  address: string;
  caPem: string;
  token: string;
  kind?: "agent" | "probe";
  name?: string;
  info?: Record<string, unknown>;
  wireguardPublicKey?: string;
  serverName?: string;
}

/** Generates a key pair + CSR and enrolls; the private key never leaves this process. */
export async function enroll(o: EnrollOptions): Promise<Identity> {
  const kind = o.kind ?? "agent";
  const { keyPem, csrPem } = await generateKeyAndCsr(o.name ?? `sim-${kind}`);
  const client = makeClient(kind === "agent" ? "AgentService" : "ProbeService", o.address, o.caPem, {
    ...(o.serverName ? { serverName: o.serverName } : {}),
  });
  try {
    const res = await unaryCall<{
      id: string;
      tenant_id: string;
      certificate_pem: string;
      ca_certificate_pem: string;
      certificate_expires_unix_ms: number;
    }>(client, "Enroll", {
      token: o.token,
      csr_pem: csrPem,
      name: o.name ?? "",
      info: o.info ?? {},
      wireguard_public_key: o.wireguardPublicKey ?? "",
    });
    return {
      kind,
      id: res.id,
      tenantId: res.tenant_id,
      certPem: res.certificate_pem,
      keyPem,
      caPem: res.ca_certificate_pem,
      expiresAt: res.certificate_expires_unix_ms,
    };
  } finally {
    client.close();
  }
}

export function identityClient(
  id: Identity,
  address: string,
  o: Omit<ClientOptions, "identity"> = {},
): Client {
  return makeClient(id.kind === "agent" ? "AgentService" : "ProbeService", address, id.caPem, {
    ...o,
    identity: { certPem: id.certPem, keyPem: id.keyPem },
  });
}
