import { CollectorError } from "../lib/errors.ts";

/** Throws PORT_IN_USE, naming the setting to change, when host:port cannot be bound. */
export async function assertPortFree(
  host: string,
  port: number,
  setting: string,
  envVar: string,
): Promise<void> {
  if (port === 0) return;
  try {
    const server = Bun.listen({ hostname: host, port, socket: { data() {} } });
    server.stop(true);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "EADDRINUSE" || /in use/i.test(String(err))) {
      throw new CollectorError(
        "PORT_IN_USE",
        `port ${host}:${port} (${setting}) is already in use by another process. ` +
          `Stop that process, or choose another port with ${setting} in the config file or ${envVar}.`,
      );
    }
    throw new CollectorError("PORT_IN_USE", `cannot listen on ${host}:${port} (${setting}): ${String(err)}`);
  }
}

/** Ports freePort has handed out in this process (the most recent ones), so that it never gives one twice. */
const handedOut = new Set<number>();
const REMEMBERED = 4096;

/**
 * A free TCP port on the loopback interface, chosen by the kernel, and not one this process was already given:
 * the kernel may offer a port again as soon as the probe socket closes, so two calls (embedded PostgreSQL and
 * nats-server both on automatic ports) could otherwise get the same one.
 */
export function freePort(host = "127.0.0.1"): number {
  for (let attempt = 0; attempt < 64; attempt++) {
    const server = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
    const port = server.port;
    server.stop(true);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (handedOut.size > REMEMBERED) handedOut.delete(handedOut.values().next().value as number);
    return port;
  }
  throw new CollectorError(
    "PORT_IN_USE",
    `no free TCP port on ${host} after 64 tries: set the ports in the config file (nats.port, database.embedded.port)`,
  );
}
