// Loaded before every test file (bunfig.toml). Hooks here span the whole run: the shared PostgreSQL cluster
// and nats-server are started on first use and stopped once, after the last file.
import { afterAll } from "bun:test";
import { stopTestNats } from "./nats.ts";
import { stopTestCluster } from "./pg.ts";
import { removeTempDirs } from "./tmp.ts";

process.env.SECUMON_LOG_LEVEL ??= "warn";

afterAll(async () => {
  await Promise.all([stopTestCluster(), stopTestNats()]);
  removeTempDirs();
});
