/**
 * Who is calling, and may they still: the principal named by the client certificate (SAN URI written by the
 * collector CA), its current status (cached briefly, refreshed by PostgreSQL notifications), and the open
 * calls of each principal so a revocation or deletion closes them at once.
 */
import type { Sql } from "postgres";
import type { Logger } from "../observability/logger.ts";
import { type Principal, principalFromSubjectAltName } from "../pki/identity.ts";
import { withTenant } from "../storage/db.ts";
import type { Clock } from "./limits.ts";
import { permissionDenied, unauthenticated } from "./status.ts";

export const PRINCIPAL_CHANNEL = "secumon_principal_changed";

/** The part of a grpc-js call we read the peer certificate from. */
export interface CallWithAuth {
  getAuthContext(): { sslPeerCertificate?: { subjectaltname?: string; valid_to?: string } } | null;
}

interface CacheEntry {
  status: string | null; // null = no such row (deleted, or another tenant's)
  at: number;
}

export interface ChangeNotice {
  kind: string;
  id: string;
  tenant_id: string;
  status: string;
}

const REFUSED = new Set(["revoked", "disabled", "deleted"]);
const TABLE = { agent: "agents", probe: "probes" } as const;

export const principalKey = (p: Principal) => `${p.kind}:${p.id}`;

export class Principals {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly open = new Map<string, Set<(reason: string) => void>>();
  private unlisten: (() => Promise<void>) | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly log: Logger,
    private readonly cacheMs = 5000,
    private readonly now: Clock = Date.now,
  ) {}

  /** The principal of an mTLS call; UNAUTHENTICATED without a valid collector-issued certificate. */
  identify(call: CallWithAuth): Principal {
    const cert = call.getAuthContext()?.sslPeerCertificate;
    if (!cert) {
      throw unauthenticated(
        "this call needs the client certificate issued at enrollment (missing, expired, or not signed by this collector's CA): renew it before it expires, or enroll again",
        "no_client_cert",
      );
    }
    const p = principalFromSubjectAltName(cert.subjectaltname);
    if (!p) {
      throw unauthenticated(
        "the client certificate does not name a SecuMon agent or probe; use the certificate returned by Enroll",
        "bad_client_cert",
      );
    }
    return p;
  }

  /** identify() + the right kind for this service + not revoked, disabled or deleted. */
  async authorize(call: CallWithAuth, kind: "agent" | "probe"): Promise<Principal> {
    const p = this.identify(call);
    if (p.kind !== kind) {
      throw permissionDenied(
        `this certificate belongs to a ${p.kind}; call the ${p.kind === "probe" ? "ProbeService" : "AgentService"}`,
        "wrong_kind",
      );
    }
    const status = await this.status(p);
    this.assertAllowed(p, status);
    return p;
  }

  assertAllowed(p: Principal, status: string | null): void {
    if (status === null) {
      throw permissionDenied(
        `${p.kind} ${p.id} no longer exists (deleted); enroll it again with a new token`,
        "deleted",
      );
    }
    if (REFUSED.has(status)) {
      throw permissionDenied(
        `${p.kind} ${p.id} is ${status}; an administrator must re-enable it, or enroll it again`,
        status,
      );
    }
  }

  /** Synchronous check from the cache only (per batch on an open stream). */
  refusedNow(p: Principal): string | null {
    const e = this.cache.get(principalKey(p));
    if (!e) return null;
    if (e.status === null) return "deleted";
    return REFUSED.has(e.status) ? e.status : null;
  }

  async status(p: Principal): Promise<string | null> {
    const key = principalKey(p);
    const hit = this.cache.get(key);
    if (hit && this.now() - hit.at < this.cacheMs) return hit.status;
    if (p.kind === "collector") return null;
    const table = TABLE[p.kind];
    const rows = await withTenant(
      this.sql,
      p.tenantId,
      (tx) => tx<{ status: string }[]>`select status from ${tx(table)} where id = ${p.id}`,
    );
    const status = rows[0]?.status ?? null;
    this.cache.set(key, { status, at: this.now() });
    return status;
  }

  /** Registers an open call; `close` runs when the principal is revoked/disabled/deleted. Returns the unregister. */
  track(p: Principal, close: (reason: string) => void): () => void {
    const key = principalKey(p);
    let set = this.open.get(key);
    if (!set) {
      set = new Set();
      this.open.set(key, set);
    }
    set.add(close);
    return () => {
      const s = this.open.get(key);
      if (!s) return;
      s.delete(close);
      if (s.size === 0) this.open.delete(key);
    };
  }

  /** Applies a change notice (from LISTEN, or local). Returns true when open calls were closed. */
  apply(n: ChangeNotice): boolean {
    const key = `${n.kind}:${n.id}`;
    const status = n.status === "deleted" ? null : n.status;
    this.cache.set(key, { status, at: this.now() });
    if (status !== null && !REFUSED.has(status)) return false;
    const closers = this.open.get(key);
    if (!closers) return false;
    this.open.delete(key);
    const reason =
      status === null
        ? `${n.kind} ${n.id} was deleted; enroll it again with a new token`
        : `${n.kind} ${n.id} was ${status} by an administrator`;
    for (const close of closers) close(reason);
    this.log.info(
      { kind: n.kind, id: n.id, tenant: n.tenant_id, status: n.status, calls: closers.size },
      "closed the open calls of a refused principal",
    );
    return true;
  }

  /** LISTENs for changes (migration 010's trigger). */
  async listen(onNotice?: (n: ChangeNotice) => void): Promise<void> {
    const sub = await this.sql.listen(
      PRINCIPAL_CHANNEL,
      (payload) => {
        let n: ChangeNotice;
        try {
          n = JSON.parse(payload) as ChangeNotice;
        } catch {
          this.log.warn({ channel: PRINCIPAL_CHANNEL }, "ignoring a malformed principal-change notification");
          return;
        }
        this.apply(n);
        onNotice?.(n);
      },
      // (re)connected: anything may have changed while we were not listening
      () => this.cache.clear(),
    );
    this.unlisten = sub.unlisten;
  }

  async stop(): Promise<void> {
    const u = this.unlisten;
    this.unlisten = null;
    await u?.().catch(() => {});
  }

  get openPrincipals(): number {
    return this.open.size;
  }
}
