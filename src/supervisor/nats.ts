/**
 * The embedded nats-server: JetStream on, file store under the data directory, `sync_interval: always` by
 * default so an acknowledged publish survives a power cut, listening on loopback.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import type { Logger } from "../observability/logger.ts";
import type { ChildEvents, RestartPolicy } from "./child.ts";
import { SupervisedChild } from "./child.ts";

export interface NatsOptions {
  binary: string;
  dataDir: string;
  host: string;
  port: number;
  syncInterval: string;
  maxStoreBytes?: number;
}

export function natsConfig(o: NatsOptions, storeDir: string): string {
  const js = [`  store_dir: ${JSON.stringify(storeDir)}`, `  sync_interval: ${o.syncInterval}`];
  if (o.maxStoreBytes) js.push(`  max_file_store: ${o.maxStoreBytes}`);
  return [
    "# written by secumon-collector at each start; edits are overwritten",
    `server_name: secumon`,
    `listen: ${JSON.stringify(`${o.host}:${o.port}`)}`,
    "max_payload: 8MB",
    "jetstream {",
    ...js,
    "}",
    "",
  ].join("\n");
}

export function natsUrl(o: Pick<NatsOptions, "host" | "port">): string {
  return `nats://${o.host}:${o.port}`;
}

export async function natsReady(url: string): Promise<boolean> {
  const nc = await connect({ servers: url, timeout: 1000, reconnect: false });
  try {
    const { jetstreamManager } = await import("@nats-io/jetstream");
    const jsm = await jetstreamManager(nc, { timeout: 1000 });
    await jsm.getAccountInfo();
    return true;
  } finally {
    await nc.close();
  }
}

export function natsChild(
  o: NatsOptions,
  policy: RestartPolicy,
  log: Logger,
  events?: ChildEvents,
): SupervisedChild {
  const dir = join(o.dataDir, "nats");
  const storeDir = join(dir, "jetstream");
  mkdirSync(storeDir, { recursive: true, mode: 0o700 });
  const confPath = join(dir, "nats.conf");
  writeFileSync(confPath, natsConfig(o, storeDir), { mode: 0o600 });
  const url = natsUrl(o);
  return new SupervisedChild(
    {
      name: "nats",
      argv: [o.binary, "-c", confPath],
      cwd: dir,
      stopSignal: "SIGTERM",
      probe: () => natsReady(url),
      startTimeoutMs: 30_000,
      levelOf: (l) =>
        /\[(ERR|FTL)\]/.test(l)
          ? "error"
          : /\[WRN\]/.test(l)
            ? "warn"
            : /\[(DBG|TRC)\]/.test(l)
              ? "debug"
              : "info",
    },
    policy,
    log,
    events,
  );
}
