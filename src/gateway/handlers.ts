/** The AgentService and ProbeService RPC handlers: authentication, limits, then enrollment/intake/presence. */
import type {
  ServerDuplexStream,
  ServerUnaryCall,
  sendUnaryData,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { Sql } from "postgres";
import type { TelemetryKind } from "../bus/telemetry.ts";
import type { Logger } from "../observability/logger.ts";
import type { Principal } from "../pki/identity.ts";
import { isInvalidMessage } from "../protocol/grpc.ts";
import { probeAssignments } from "./assignments.ts";
import { type Principals, principalKey } from "./auth.ts";
import { type ControlChannels, rekeyAt } from "./control.ts";
import type { Enroller, EnrollRequest } from "./enroll.ts";
import type { Intake, WireBatch } from "./intake.ts";
import type { CallCounter, RateLimiter } from "./limits.ts";
import type { GatewayMetrics } from "./metrics.ts";
import type { Presence } from "./presence.ts";
import { Code, exhausted, GatewayError, invalidArgument, isGatewayError, toServiceError } from "./status.ts";

export interface HandlerDeps {
  sql: Sql;
  log: Logger;
  principals: Principals;
  control: ControlChannels;
  enroller: Enroller;
  intake: Intake;
  presence: Presence;
  calls: CallCounter;
  batchLimiter: RateLimiter | null;
  enrollFailures: RateLimiter;
  metrics: GatewayMetrics;
  /** batches processed concurrently per stream before reading pauses */
  maxInflightPerStream: number;
}

interface BatchAck {
  batch_id: string;
  code: number;
  message: string;
  retry_after_ms: number;
}

type Unary<Req, Res> = (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => void;

export function agentHandlers(d: HandlerDeps): UntypedServiceImplementation {
  return {
    Enroll: enrollHandler(d, "agent"),
    RenewCertificate: renewHandler(d, "agent"),
    SendMetrics: telemetryStream(d, "agent", "metrics"),
    SendLogs: telemetryStream(d, "agent", "logs"),
    SendInventory: telemetryUnary(d, "agent", "inventory"),
    Connect: connectHandler(d),
  };
}

export function probeHandlers(d: HandlerDeps): UntypedServiceImplementation {
  return {
    Enroll: enrollHandler(d, "probe"),
    RenewCertificate: renewHandler(d, "probe"),
    GetAssignments: unary(d, async (call: ServerUnaryCall<{ known_version?: string }, unknown>) => {
      const p = await d.principals.authorize(call, "probe");
      rateLimit(d, p);
      d.presence.touch(p, "online");
      return probeAssignments(d.sql, p, call.request.known_version ?? "");
    }),
    SendResults: telemetryStream(d, "probe", "scans"),
    SendSnmp: telemetryStream(d, "probe", "snmp"),
  };
}

/** Wraps an async unary handler: GatewayError → its status; anything else → INTERNAL, logged. */
function unary<Req, Res>(
  d: HandlerDeps,
  fn: (call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): Unary<Req, Res> {
  return (call, cb) => {
    if (isInvalidMessage(call.request)) {
      d.metrics.refusals.inc({ reason: "malformed_request" });
      cb(toServiceError(invalidArgument(`malformed request: ${call.request.reason}`, "malformed_request")));
      return;
    }
    fn(call).then(
      (res) => cb(null, res),
      (err) => cb(toServiceError(asGatewayError(d, err, call.getPath()))),
    );
  };
}

function asGatewayError(d: HandlerDeps, err: unknown, path: string): GatewayError {
  if (isGatewayError(err)) {
    d.metrics.refusals.inc({ reason: err.reason });
    return err;
  }
  d.log.error({ err: String(err), path }, "gateway call failed");
  return new GatewayError(
    Code.INTERNAL,
    "internal error in the collector; retry later (the collector logged it)",
    "internal",
  );
}

function peerHost(peer: string): string {
  const s = peer.replace(/^ipv[46]:/, "");
  const m = /^\[?(.*?)\]?:\d+$/.exec(s);
  return m ? m[1]! : s;
}

function enrollHandler(d: HandlerDeps, kind: "agent" | "probe") {
  return unary(d, async (call: ServerUnaryCall<EnrollRequest, unknown>) => {
    const ip = peerHost(call.getPeer());
    const wait = d.enrollFailures.peek(ip);
    if (wait > 0) {
      d.metrics.enrollments.inc({ kind, result: "throttled" });
      throw exhausted(
        `too many failed enrollments from ${ip}; retry in ${Math.ceil(wait / 1000)} s`,
        "enroll_throttled",
      );
    }
    try {
      const res = await d.enroller.enroll(kind, call.request);
      d.metrics.enrollments.inc({ kind, result: "ok" });
      return res;
    } catch (err) {
      if (isGatewayError(err)) {
        d.enrollFailures.take(ip);
        d.metrics.enrollments.inc({ kind, result: err.reason });
        d.log.info({ kind, ip, reason: err.reason }, "enrollment refused");
      }
      throw err;
    }
  });
}

function renewHandler(d: HandlerDeps, kind: "agent" | "probe") {
  return unary(d, async (call: ServerUnaryCall<{ csr_pem: string }, unknown>) => {
    const p = await d.principals.authorize(call, kind);
    rateLimit(d, p);
    d.presence.touch(p, "online");
    return d.enroller.renew(p, call.request.csr_pem);
  });
}

/** Takes one request from a principal's (principalKey) per-agent rate (gateway.rate_limiting): ms to wait, 0 = go. */
function rateWait(d: HandlerDeps, key: string): number {
  return d.batchLimiter?.take(key) ?? 0;
}

/** The per-agent rate limit (gateway.rate_limiting) for a unary call: RESOURCE_EXHAUSTED beyond it. */
function rateLimit(d: HandlerDeps, p: Principal): void {
  const wait = rateWait(d, principalKey(p));
  if (wait > 0) {
    throw exhausted(
      `rate limit (gateway.rate_limiting) reached for ${p.kind} ${p.id}: retry in ${wait} ms`,
      "rate_limited",
    );
  }
}

function ackFor(batchId: string, err: GatewayError): BatchAck {
  const transient = err.code === Code.RESOURCE_EXHAUSTED || err.code === Code.UNAVAILABLE;
  return { batch_id: batchId, code: err.code, message: err.details, retry_after_ms: transient ? 1000 : 0 };
}

function telemetryUnary(d: HandlerDeps, svc: "agent" | "probe", kind: TelemetryKind) {
  return unary(d, async (call: ServerUnaryCall<WireBatch, BatchAck>) => {
    const p = await d.principals.authorize(call, svc);
    const t0 = performance.now();
    rateLimit(d, p);
    try {
      const r = await d.intake.accept(p, kind, call.request);
      d.presence.touch(p, "online");
      d.metrics.batches.inc({ kind, result: r.duplicate ? "duplicate" : "ok" });
      d.metrics.batchBytes.inc({ kind }, call.request.payload.byteLength);
      d.metrics.ackSeconds.observe((performance.now() - t0) / 1000);
      return { batch_id: call.request.batch_id, code: 0, message: "", retry_after_ms: 0 };
    } catch (err) {
      if (isGatewayError(err)) d.metrics.batches.inc({ kind, result: err.reason });
      throw err;
    }
  });
}

/** Common life of a streaming call: auth, slot, revocation tracking, presence, one cleanup. */
async function openStream(
  d: HandlerDeps,
  call: ServerDuplexStream<unknown, unknown>,
  svc: "agent" | "probe",
): Promise<{
  p: Principal;
  end: (err: GatewayError | null) => void;
  isClosed: () => boolean;
  /** runs once when the call is over, whatever ended it */
  onCleanup: (fn: () => void) => void;
} | null> {
  const fail = (err: unknown) => {
    const g = asGatewayError(d, err, call.getPath());
    call.emit("error", toServiceError(g));
  };
  let p: Principal;
  try {
    p = await d.principals.authorize(call, svc);
  } catch (err) {
    fail(err);
    return null;
  }
  const key = principalKey(p);
  const refused = d.calls.acquire(key);
  if (refused) {
    fail(
      refused === "total"
        ? exhausted("the gateway is at its connection limit; reconnect later with backoff", "max_connections")
        : exhausted("too many open streams for this agent; close some first", "max_streams_per_source"),
    );
    return null;
  }
  d.metrics.openStreams.inc();
  d.presence.streamOpened(p, "online");
  let closed = false;
  let cleaned = false;
  let cancelExpiry: (() => void) | null = null;
  const cleanups: (() => void)[] = [];
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    closed = true;
    untrack();
    for (const fn of cleanups) fn();
    cancelExpiry?.();
    d.calls.release(key);
    d.metrics.openStreams.dec();
    d.presence.streamClosed(p);
  };
  const end = (err: GatewayError | null) => {
    if (closed) return;
    closed = true;
    if (err) call.emit("error", toServiceError(err));
    else call.end();
  };
  const untrack = d.principals.track(p, (reason) => {
    d.metrics.refusals.inc({ reason: "revoked_while_open" });
    end(new GatewayError(Code.PERMISSION_DENIED, `${reason}; this stream is closed`, "revoked"));
  });
  // the certificate was valid at the handshake; the stream must not outlive it
  const notAfter = Date.parse(call.getAuthContext()?.sslPeerCertificate?.valid_to ?? "");
  if (Number.isFinite(notAfter)) {
    cancelExpiry = timerAt(notAfter, () => {
      d.metrics.refusals.inc({ reason: "cert_expired_while_open" });
      end(certExpired(p, notAfter));
    });
  }
  call.on("cancelled", cleanup);
  call.on("close", cleanup);
  call.on("finish", cleanup);
  call.on("error", () => cleanup());
  return {
    p,
    end,
    isClosed: () => closed,
    onCleanup: (fn) => {
      if (cleaned) fn();
      else cleanups.push(fn);
    },
  };
}

/** setTimeout's longest delay (~24.8 days); a later time re-arms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs `fn` at `at` (ms since the epoch; soon after, if that has passed), re-arming in steps when it is
 * further away than setTimeout allows; unref'd. Returns the cancel.
 */
function timerAt(at: number, fn: () => void): () => void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const arm = () => {
    const left = at - Date.now();
    timer = setTimeout(
      () => {
        timer = null;
        if (left > MAX_TIMER_MS) arm();
        else fn();
      },
      Math.min(Math.max(0, left), MAX_TIMER_MS),
    );
    timer.unref?.();
  };
  arm();
  return () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
}

function certExpired(p: Principal, notAfter: number): GatewayError {
  return new GatewayError(
    Code.UNAUTHENTICATED,
    `the client certificate of ${p.kind} ${p.id} expired at ${new Date(notAfter).toISOString()}; this stream is ` +
      "closed. Renew the certificate before it expires (RenewCertificate), or enroll again, then reconnect",
    "cert_expired",
  );
}

function telemetryStream(d: HandlerDeps, svc: "agent" | "probe", kind: TelemetryKind) {
  return async (call: ServerDuplexStream<WireBatch, BatchAck>) => {
    call.pause();
    const s = await openStream(d, call as ServerDuplexStream<unknown, unknown>, svc);
    if (!s) return;
    const { p } = s;
    const key = principalKey(p);
    let inflight = 0;
    let halfClosed = false;
    const maybeFinish = () => {
      if (halfClosed && inflight === 0) s.end(null);
    };
    const reply = (ack: BatchAck) => {
      if (!s.isClosed()) call.write(ack);
    };
    call.on("data", (m: WireBatch) => {
      if (s.isClosed()) return;
      if (isInvalidMessage(m)) {
        d.metrics.batches.inc({ kind, result: "malformed_request" });
        s.end(
          invalidArgument(`malformed TelemetryBatch: ${m.reason}; the stream is closed`, "malformed_request"),
        );
        return;
      }
      const gone = d.principals.refusedNow(p);
      if (gone) {
        s.end(
          new GatewayError(
            Code.PERMISSION_DENIED,
            `${p.kind} ${p.id} is ${gone}; this stream is closed`,
            "revoked",
          ),
        );
        return;
      }
      const t0 = performance.now();
      const wait = rateWait(d, key);
      if (wait > 0) {
        d.metrics.batches.inc({ kind, result: "rate_limited" });
        reply({
          batch_id: String(m.batch_id),
          code: Code.RESOURCE_EXHAUSTED,
          message: `rate limit: resend in ${wait} ms`,
          retry_after_ms: wait,
        });
        return;
      }
      inflight++;
      if (inflight >= d.maxInflightPerStream) call.pause();
      d.intake
        .accept(p, kind, m)
        .then(
          (r) => {
            d.presence.touch(p, "online");
            d.metrics.batches.inc({ kind, result: r.duplicate ? "duplicate" : "ok" });
            d.metrics.batchBytes.inc({ kind }, m.payload.byteLength);
            d.metrics.ackSeconds.observe((performance.now() - t0) / 1000);
            reply({ batch_id: m.batch_id, code: 0, message: "", retry_after_ms: 0 });
          },
          (err) => {
            const g = asGatewayError(d, err, call.getPath());
            d.metrics.batches.inc({ kind, result: g.reason });
            reply(ackFor(String(m.batch_id), g));
          },
        )
        .finally(() => {
          inflight--;
          if (inflight < d.maxInflightPerStream && !s.isClosed()) call.resume();
          maybeFinish();
        });
    });
    call.on("end", () => {
      halfClosed = true;
      maybeFinish();
    });
    call.resume();
  };
}

function connectHandler(d: HandlerDeps) {
  return async (call: ServerDuplexStream<{ heartbeat?: { sent_unix_ms?: number } | null }, unknown>) => {
    call.pause();
    const s = await openStream(d, call as ServerDuplexStream<unknown, unknown>, "agent");
    if (!s) return;
    const { p } = s;
    const key = principalKey(p);
    // the configuration now, then again whenever an administrator changes it (each distinct one once)
    let lastConfig: string | null = null;
    const pushConfig = (json: string) => {
      if (s.isClosed() || json === lastConfig) return;
      lastConfig = json;
      call.write({ config: { config_json: json } });
    };
    s.onCleanup(d.control.register(p, pushConfig));
    await d.control.changed(p.id);
    // re-key: ask for a new certificate before this one ends (at once when that time has already come)
    const cert = call.getAuthContext()?.sslPeerCertificate;
    const notAfter = Date.parse(cert?.valid_to ?? "");
    if (Number.isFinite(notAfter)) {
      const rekey = () => {
        if (!s.isClosed())
          call.write({
            rekey: { reason: `certificate expires ${new Date(notAfter).toISOString()}; renew it` },
          });
      };
      s.onCleanup(timerAt(rekeyAt(Date.parse(cert?.valid_from ?? ""), notAfter), rekey));
    }
    call.on("data", (m) => {
      if (s.isClosed()) return;
      if (isInvalidMessage(m)) {
        d.metrics.refusals.inc({ reason: "malformed_request" });
        s.end(
          invalidArgument(
            `malformed AgentMessage: ${m.reason}; the stream is closed (send AgentMessage of secumon.v1, then reconnect)`,
            "malformed_request",
          ),
        );
        return;
      }
      // heartbeats count against the per-agent rate like any request: a flood ends the stream
      const wait = rateWait(d, key);
      if (wait > 0) {
        d.metrics.refusals.inc({ reason: "rate_limited" });
        s.end(
          exhausted(
            `Connect messages faster than the per-agent rate limit (gateway.rate_limiting); reconnect in ${wait} ms and send a heartbeat every few seconds`,
            "rate_limited",
          ),
        );
        return;
      }
      d.presence.touch(p, "online");
      if (m.heartbeat) call.write({ heartbeat_ack: { server_unix_ms: Date.now() } });
    });
    call.on("end", () => s.end(null));
    call.resume();
  };
}
