/**
 * HTTP routes of the wgmanager, mounted on the collector's HTTP server:
 *   GET  /api/v1/wireguard/server                    the collector's public key, endpoint, pending rotation
 *   GET  /api/v1/wireguard/peers                     every peer with handshake and traffic counters
 *   GET  /api/v1/wireguard/peers/:kind/:id           one peer
 *   GET  /api/v1/wireguard/peers/:kind/:id/config    its wg-quick file (text/plain)
 *   POST /api/v1/wireguard/rotate {grace?: "24h"}    start a key rotation
 * Access: `authorize` decides. The role (index.ts) passes the API's authentication, superadmins only
 * (src/api/authorizer.ts); the loopback-only default serves tests and embedding. Private keys never leave the
 * collector.
 */
import { Elysia, t } from "elysia";
import { parseDuration } from "../config/schema.ts";
import { CollectorError } from "../lib/errors.ts";
import type { WgManager } from "./manager.ts";
import type { PeerKind, ServerInfo } from "./store.ts";
import { endpointOf } from "./wgquick.ts";

/** Returns normally to admit the request; throws CollectorError (401/403) to refuse it. */
export type Authorize = (request: Request, clientIp: string | null) => void | Promise<void>;

export const loopbackOnly: Authorize = (_request, clientIp) => {
  if (clientIp && /^(127\.|::1$|::ffff:127\.)/.test(clientIp)) return;
  throw new CollectorError(
    "FORBIDDEN",
    "the WireGuard API answers local clients only in this build; call it from the collector host (127.0.0.1)",
  );
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function principal(params: { kind: string; id: string }): { kind: PeerKind; id: string } {
  if (params.kind !== "agent" && params.kind !== "probe") {
    throw new CollectorError("BAD_REQUEST", `peer kind must be "agent" or "probe", got "${params.kind}"`);
  }
  if (!UUID.test(params.id)) throw new CollectorError("BAD_REQUEST", `"${params.id}" is not a UUID`);
  return { kind: params.kind, id: params.id.toLowerCase() };
}

function serverJson(s: ServerInfo, up: boolean, reason: string | null) {
  return {
    up,
    reason,
    interface: s.interface,
    public_key: s.publicKey,
    endpoint: endpointOf(s),
    listen_port: s.listenPort,
    address: s.address,
    pool: s.pool,
    allowed_ips: s.allowedIps,
    persistent_keepalive: s.persistentKeepalive,
    next_public_key: s.nextPublicKey,
    rotate_at: s.rotateAt?.toISOString() ?? null,
    previous_public_key: s.previousPublicKey,
    rotated_at: s.rotatedAt?.toISOString() ?? null,
  };
}

export function wireguardRoutes(m: WgManager, authorize: Authorize = loopbackOnly) {
  const running = () => {
    if (m.disabledReason) throw new CollectorError("CONFLICT", m.disabledReason, { status: 503 });
  };
  return new Elysia({ name: "wgmanager/http" }).group("/api/v1/wireguard", (app) =>
    app
      .onBeforeHandle(async ({ request, server }) => {
        await authorize(request, server?.requestIP(request)?.address ?? null);
      })
      .get("/server", async () => {
        const s = await m.server();
        if (!s) {
          throw new CollectorError(
            "NOT_FOUND",
            m.disabledReason ?? "WireGuard has not been set up yet (the wgmanager role is starting)",
          );
        }
        return serverJson(s, !m.disabledReason, m.disabledReason);
      })
      .get("/peers", () => {
        running();
        return { peers: m.peers() };
      })
      .get("/peers/:kind/:id", ({ params }) => {
        running();
        const p = principal(params);
        const found = m.peers().find((r) => r.kind === p.kind && r.id === p.id);
        if (!found) {
          throw new CollectorError(
            "NOT_FOUND",
            `${p.kind} ${p.id} is not a peer of the interface (not enrolled with a WireGuard key, revoked, or deleted)`,
          );
        }
        return found;
      })
      .get("/peers/:kind/:id/config", async ({ params, set }) => {
        const p = principal(params);
        const text = await m.peerConfig(p.kind, p.id);
        set.headers["content-type"] = "text/plain; charset=utf-8";
        set.headers["content-disposition"] = `attachment; filename="secumon-${p.kind}-${p.id}.conf"`;
        return text;
      })
      .post(
        "/rotate",
        async ({ body }) => {
          running();
          let grace: number | undefined;
          if (body?.grace !== undefined) {
            try {
              grace = body.grace === "0" ? 0 : parseDuration(body.grace);
            } catch {
              throw new CollectorError(
                "BAD_REQUEST",
                `grace must be a duration such as "24h", "30m" or "0s" (switch now), got "${body.grace}"`,
              );
            }
          }
          const s = await m.rotate(grace);
          return serverJson(s, true, null);
        },
        { body: t.Optional(t.Object({ grace: t.Optional(t.String()) }, { additionalProperties: false })) },
      ),
  );
}
