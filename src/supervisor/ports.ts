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

/** A free TCP port on the loopback interface, chosen by the kernel. */
export function freePort(host = "127.0.0.1"): number {
  const server = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}
