/** One NATS connection per process, shared by its roles; reconnects forever (the supervisor restarts the server). */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../observability/logger.ts";

export async function connectNats(url: string, name: string, log: Logger): Promise<NatsConnection> {
  const nc = await connect({
    servers: url,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    timeout: 5000,
    pingInterval: 10_000,
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") log.warn({ server: url }, "NATS connection lost; reconnecting");
      else if (s.type === "reconnect") log.info({ server: url }, "NATS connection re-established");
      else if (s.type === "error") log.error({ err: String((s as { error?: unknown }).error) }, "NATS error");
    }
  })();
  return nc;
}
