/**
 * Enrollment and certificate renewal. Enroll consumes one use of a token atomically (as secumon_admin: no
 * tenant is known yet), creates the agent/probe row in the token's tenant, optionally allocates a WireGuard
 * address (migration 050's secumon_wg_assign, when present), and signs the CSR — all in one transaction, so a
 * refusal at any step consumes nothing and writes nothing. The CSR is verified before the token is touched.
 */
import { randomUUID } from "node:crypto";
import { isIP } from "node:net";
import type { Sql } from "postgres";
import { isCollectorError } from "../lib/errors.ts";
import type { Logger } from "../observability/logger.ts";
import type { CertificateAuthority } from "../pki/ca.ts";
import { verifiedCsrKey } from "../pki/ca.ts";
import type { Principal } from "../pki/identity.ts";
import { hashEnrollmentToken, looksLikeEnrollmentToken } from "../pki/tokens.ts";
import { type Tx, withAdmin } from "../storage/db.ts";
import {
  alreadyExists,
  exhausted,
  type GatewayError,
  invalidArgument,
  permissionDenied,
  unauthenticated,
} from "./status.ts";

export interface EnrollRequest {
  token: string;
  csr_pem: string;
  name?: string;
  info?: {
    hostname?: string;
    os?: string;
    os_version?: string;
    arch?: string;
    version?: string;
    ip_addresses?: string[];
    tags?: string[];
    location?: string;
  } | null;
  wireguard_public_key?: string;
}

export interface WireGuardConfig {
  address: string;
  server_public_key: string;
  endpoint: string;
  allowed_ips: string[];
  persistent_keepalive_seconds: number;
}

export interface EnrollResult {
  id: string;
  tenant_id: string;
  certificate_pem: string;
  ca_certificate_pem: string;
  certificate_expires_unix_ms: number;
  wireguard: WireGuardConfig | null;
}

export interface EnrollerOptions {
  sql: Sql;
  ca: CertificateAuthority;
  log: Logger;
  clientCertValidityMs: number;
  wireguardEnabled: boolean;
}

const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export class Enroller {
  constructor(private readonly o: EnrollerOptions) {}

  async enroll(kind: "agent" | "probe", req: EnrollRequest): Promise<EnrollResult> {
    if (!req.token || !looksLikeEnrollmentToken(req.token)) {
      throw unauthenticated(
        "invalid enrollment token; ask a tenant administrator for a new one (smet_…)",
        "bad_token",
      );
    }
    await this.csrKey(req.csr_pem);
    const wgKey = req.wireguard_public_key?.trim() ?? "";
    if (wgKey && !WG_KEY.test(wgKey)) {
      throw invalidArgument(
        "wireguard_public_key must be a base64 WireGuard public key (32 bytes)",
        "bad_wg_key",
      );
    }
    const hash = hashEnrollmentToken(req.token);
    return withAdmin(this.o.sql, async (tx) => {
      const [tok] = await tx<{ tenant_id: string; id: string }[]>`
        update enrollment_tokens set uses = uses + 1
         where token_hash = ${hash} and principal_kind = ${kind} and revoked_at is null and expires_at > now()
           and (max_uses is null or uses < max_uses)
        returning tenant_id, id`;
      if (!tok) throw await this.tokenRefusal(tx, hash, kind);
      const id = randomUUID();
      const p: Principal = { kind, tenantId: tok.tenant_id, id };
      await this.insertPrincipal(tx, p, req);
      const wireguard = wgKey && this.o.wireguardEnabled ? await this.assignWireGuard(tx, p, wgKey) : null;
      const cert = await this.o.ca.issueClient(req.csr_pem, p, this.o.clientCertValidityMs);
      this.o.log.info(
        { kind, id, tenant: tok.tenant_id, token: tok.id, serial: cert.serial },
        `${kind} enrolled`,
      );
      return {
        id,
        tenant_id: tok.tenant_id,
        certificate_pem: cert.certPem,
        ca_certificate_pem: this.o.ca.certPem,
        certificate_expires_unix_ms: cert.notAfter.getTime(),
        wireguard,
      };
    });
  }

  /** A new certificate for an authenticated principal (mTLS). */
  async renew(p: Principal, csrPem: string) {
    await this.csrKey(csrPem);
    const cert = await this.o.ca.issueClient(csrPem, p, this.o.clientCertValidityMs);
    this.o.log.info(
      { kind: p.kind, id: p.id, tenant: p.tenantId, serial: cert.serial },
      "certificate renewed",
    );
    return {
      certificate_pem: cert.certPem,
      ca_certificate_pem: this.o.ca.certPem,
      certificate_expires_unix_ms: cert.notAfter.getTime(),
    };
  }

  private async csrKey(csrPem: string): Promise<void> {
    try {
      await verifiedCsrKey(csrPem ?? "");
    } catch (err) {
      if (isCollectorError(err)) throw invalidArgument(err.message, "bad_csr");
      throw err;
    }
  }

  private async tokenRefusal(tx: Tx, hash: Buffer, kind: string): Promise<GatewayError> {
    const [t] = await tx<
      { principal_kind: string; expired: boolean; revoked: boolean; exhausted: boolean }[]
    >`
      select principal_kind, expires_at <= now() as expired, revoked_at is not null as revoked,
             (max_uses is not null and uses >= max_uses) as exhausted
        from enrollment_tokens where token_hash = ${hash}`;
    if (!t)
      return unauthenticated(
        "unknown enrollment token; ask a tenant administrator for a new one",
        "unknown_token",
      );
    if (t.revoked)
      return unauthenticated("this enrollment token was revoked; ask for a new one", "revoked_token");
    if (t.expired)
      return unauthenticated("this enrollment token has expired; ask for a new one", "expired_token");
    if (t.exhausted) {
      return unauthenticated(
        "this enrollment token has been used its maximum number of times; ask for a new one",
        "exhausted_token",
      );
    }
    return permissionDenied(
      `this enrollment token is for a ${t.principal_kind}, not a ${kind}; use the ${t.principal_kind === "probe" ? "ProbeService" : "AgentService"} or a ${kind} token`,
      "wrong_token_kind",
    );
  }

  private async insertPrincipal(tx: Tx, p: Principal, req: EnrollRequest): Promise<void> {
    const info = req.info ?? {};
    const clean = (s: string | undefined, max = 255) => (s ?? "").trim().slice(0, max) || null;
    const name = clean(req.name) ?? clean(info.hostname) ?? `${p.kind}-${p.id.slice(0, 8)}`;
    const tags = (info.tags ?? [])
      .map((t) => String(t).trim().slice(0, 64))
      .filter(Boolean)
      .slice(0, 64);
    if (p.kind === "agent") {
      const ips = (info.ip_addresses ?? []).filter((a) => isIP(a) !== 0).slice(0, 64);
      await tx`
        insert into agents (id, tenant_id, name, hostname, ip_addresses, os, os_version, arch, version, tags, status)
        values (${p.id}, ${p.tenantId}, ${name}, ${clean(info.hostname)}, ${ips}::inet[], ${clean(info.os)},
                ${clean(info.os_version)}, ${clean(info.arch)}, ${clean(info.version)}, ${tags}, 'pending')`;
      return;
    }
    // probe names are unique per tenant: a second probe with the same name gets its id appended
    const inserted = await tx`
      insert into probes (id, tenant_id, name, location, tags, status)
      values (${p.id}, ${p.tenantId}, ${name}, ${clean(info.location)}, ${tags}, 'pending')
      on conflict (tenant_id, name) do nothing returning id`;
    if (inserted.length === 0) {
      await tx`
        insert into probes (id, tenant_id, name, location, tags, status)
        values (${p.id}, ${p.tenantId}, ${`${name}-${p.id.slice(0, 8)}`}, ${clean(info.location)}, ${tags}, 'pending')`;
    }
  }

  private async assignWireGuard(tx: Tx, p: Principal, key: string): Promise<WireGuardConfig | null> {
    try {
      return await tx.savepoint(async (sp) => {
        const [a] = await sp<
          { address: string }[]
        >`select host(secumon_wg_assign(${p.kind}, ${p.id}, ${key}))::text as address`;
        const [s] = await sp<
          { public_key: string; endpoint: string; allowed_ips: string[]; persistent_keepalive: number }[]
        >`
          select public_key, endpoint, allowed_ips::text[] as allowed_ips, persistent_keepalive from wireguard_server`;
        if (!a || !s) return null;
        return {
          address: `${a.address}/32`,
          server_public_key: s.public_key,
          endpoint: s.endpoint,
          allowed_ips: s.allowed_ips,
          persistent_keepalive_seconds: s.persistent_keepalive,
        };
      });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "42883" || code === "42P01" || code === "55000") {
        // 55000: the wgmanager role has not written wireguard_server yet (never started, or no CAP_NET_ADMIN)
        this.o.log.warn(
          { kind: p.kind, id: p.id, tenant: p.tenantId, sqlstate: code },
          code === "55000"
            ? "WireGuard is enabled but its server is not set up yet (start the wgmanager role); enrolled without a tunnel — re-enroll to get one"
            : "WireGuard is enabled but address allocation is not installed (migration 050); enrolled without a tunnel",
        );
        return null;
      }
      if (code === "23505") {
        throw alreadyExists(
          "this WireGuard public key is already used by another agent or probe; generate a new key pair on the device (wg genkey) and enroll again",
          "wg_key_in_use",
        );
      }
      if (code === "53400") {
        this.o.log.error({ kind: p.kind, id: p.id, tenant: p.tenantId }, "WireGuard address pool exhausted");
        throw exhausted(
          "the collector has no free WireGuard address for this tenant; ask the operator to widen wireguard.pool or the tenant's pool, then enroll again",
          "wg_pool_exhausted",
        );
      }
      throw err;
    }
  }
}
