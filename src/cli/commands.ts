/** The CLI's commands. Each returns the process exit code; errors are mapped by the caller (main.ts). */
import { createCollector } from "../app/collector.ts";
import { ROLE_ORDER, ROLES } from "../app/roles.ts";
import { VERSION } from "../app/version.ts";
import { embeddedMigrations } from "../assets/embedded.gen.ts";
import { loadConfig } from "../config/load.ts";
import { type Config, parseDuration } from "../config/schema.ts";
import { redact, resolveSecrets } from "../config/secrets.ts";
import { UsageError } from "../lib/errors.ts";
import { createLogger, type Logger } from "../observability/logger.ts";
import { connect } from "../storage/db.ts";
import { runMigrations } from "../storage/migrate.ts";
import { parseArgs } from "./args.ts";
import { exitOnCrash } from "./crash.ts";

const COMMON = `Options:
  --config FILE     YAML configuration file (every key optional; see the README's configuration reference)
  --data-dir DIR    data directory (default ./data; the appliance uses /var/lib/secumon)
  -h, --help        this help

Environment: SECUMON_<SECTION>__<KEY>=value overrides the file (e.g. SECUMON_API__PORT=9090).`;

export const HELP: Record<string, string> = {
  main: `secumon-collector ${VERSION} — receives telemetry from SecuMon agents and probes, stores it, alerts, and serves the API.

Usage: secumon-collector <command> [options]

Commands:
  serve          run the collector (all roles, or --roles a,b)
  migrate        apply database migrations and exit
  check-config   validate the configuration and print it with secrets redacted
  backup         write an encrypted backup (database dump and data-directory secrets)
  restore        restore a backup into a stopped collector's database and data directory
  setup-code     print the one-time code that creates the first administrator
  simulate       enroll simulated agents/probes and stream telemetry to a gateway (testing, demos)
  version        print the version

Run \`secumon-collector <command> --help\` for a command's options.
Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.`,
  serve: `Usage: secumon-collector serve [--config FILE] [--roles ROLE,...] [--data-dir DIR]

Runs the collector: supervises its own nats-server (and PostgreSQL when database.url is empty), applies
migrations, then starts the roles. Stops cleanly on SIGTERM or SIGINT.

Roles (default: all but uplink):
${ROLE_ORDER.map((r) => `  ${r.padEnd(12)} ${ROLES[r].summary}`).join("\n")}

  --roles LIST      comma-separated roles to run in this process
${COMMON}`,
  migrate: `Usage: secumon-collector migrate [--config FILE] [--data-dir DIR]

Applies pending SQL migrations (under an advisory lock, so it is safe beside running collectors) and exits.
With no database.url, the embedded PostgreSQL is started for the duration.
${COMMON}`,
  "check-config": `Usage: secumon-collector check-config [--config FILE] [--data-dir DIR] [--no-resolve]

Validates the configuration (file, then SECUMON_ environment overrides), reports every problem at once, resolves
secret references (env:, file:, ovh://secrets/) unless --no-resolve, and prints the effective configuration as
YAML with secrets redacted. Exit code 2 when anything is wrong.
${COMMON}`,
  version:
    "Usage: secumon-collector version\n\nPrints the collector's version and the bundled components' versions.",
};

const CONFIG_FLAGS = { config: { value: true }, "data-dir": { value: true }, help: { value: false } };

function configFrom(flags: Record<string, string | true>, extra: Record<string, unknown> = {}): Config {
  const overrides: Record<string, unknown> = { ...extra };
  if (typeof flags["data-dir"] === "string") overrides.data_dir = flags["data-dir"];
  return loadConfig({
    file: typeof flags.config === "string" ? flags.config : undefined,
    env: process.env,
    overrides,
  });
}

function noPositionals(cmd: string, positionals: string[]): void {
  if (positionals.length) throw new UsageError(`${cmd}: unexpected argument ${positionals[0]}; see --help`);
}

export async function serve(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(argv, { ...CONFIG_FLAGS, roles: { value: true } }, "serve");
  if (flags.help) return help("serve");
  noPositionals("serve", positionals);
  const extra: Record<string, unknown> = {};
  if (typeof flags.roles === "string") extra.roles = flags.roles.split(",").map((r) => r.trim());
  const config = await resolveSecrets(configFrom(flags, extra));
  const log = createLogger({ level: config.logging.level });
  const collector = createCollector({ config, log });

  let signalled = false;
  const onSignal = (sig: string) => {
    if (signalled) {
      log.warn({ signal: sig }, "second signal: exiting now");
      process.exit(1);
    }
    signalled = true;
    log.info({ signal: sig }, "signal received; shutting down");
    collector.stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err: String(err) }, "shutdown finished with errors");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  // the stop after a crash may take what a normal stop takes (children get supervisor.stop_timeout each)
  const stopBound = Math.max(15_000, 2 * parseDuration(config.supervisor.stop_timeout) + 5_000);
  exitOnCrash(log, () => collector.stop(), stopBound);
  await collector.start();
  return new Promise<number>(() => {}); // runs until a signal
}

export async function migrate(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(argv, CONFIG_FLAGS, "migrate");
  if (flags.help) return help("migrate");
  noPositionals("migrate", positionals);
  const config = await resolveSecrets(configFrom(flags));
  const log = createLogger({ level: config.logging.level });
  if (config.database.url) {
    const sql = connect(config.database.url, { max: 2, log });
    try {
      const res = await runMigrations(sql, embeddedMigrations, log);
      log.info(
        { applied: res.applied },
        `migrations done: ${res.applied.length} applied, ${res.skipped} already there`,
      );
    } finally {
      await sql.end({ timeout: 5 });
    }
    return 0;
  }
  // embedded database: start it (and nothing else) for the duration; start() runs the migrations
  const collector = createCollector({ config: { ...config, roles: [] }, log });
  try {
    await collector.start();
  } finally {
    await collector.stop();
  }
  return 0;
}

export async function checkConfig(argv: string[], out: (s: string) => void): Promise<number> {
  const { flags, positionals } = parseArgs(
    argv,
    { ...CONFIG_FLAGS, "no-resolve": { value: false } },
    "check-config",
  );
  if (flags.help) return help("check-config");
  noPositionals("check-config", positionals);
  let config = configFrom(flags);
  if (!flags["no-resolve"]) config = await resolveSecrets(config);
  const { stringify } = await import("yaml");
  out(`# configuration is valid\n${stringify(redact(config))}`);
  return 0;
}

export function version(out: (s: string) => void): number {
  out(`secumon-collector ${VERSION} (bun ${Bun.version})`);
  return 0;
}

export function help(cmd: string): number {
  console.log(HELP[cmd] ?? HELP.main);
  return 0;
}

export type { Logger };
