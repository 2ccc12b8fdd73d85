/**
 * An alerter in its own process, for crash and failover tests: `bun test/alerter/child-alerter.ts`, with
 * ALERTER_DB (database URL), ALERTER_KEY (base64 master key), ALERTER_INTERVAL (e.g. "1s"), ALERTER_LEASE
 * (delivery lease, e.g. "2s"). Logs JSON lines on stdout; runs until killed.
 */
import { createAlerter } from "../../src/alerter/service.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { createKeyring } from "../../src/security/keyring.ts";
import { connect } from "../../src/storage/db.ts";
import { alerterConfig } from "./support.ts";

const log = createLogger({ level: "info" }).child({ pid: process.pid });
const sql = connect(process.env.ALERTER_DB ?? "", { max: 4, log });
const alerter = createAlerter({
  sql,
  log,
  nats: null,
  keyring: createKeyring(Buffer.from(process.env.ALERTER_KEY ?? "", "base64")),
  config: alerterConfig({
    evaluation_interval: process.env.ALERTER_INTERVAL ?? "1s",
    delivery: { lease: process.env.ALERTER_LEASE ?? "2s" },
  }),
});
await alerter.start();
log.info("child alerter started");
for (const s of ["SIGTERM", "SIGINT"] as const)
  process.on(s, async () => {
    await alerter.stop();
    await sql.end({ timeout: 2 });
    process.exit(0);
  });
