#!/usr/bin/env bun
/**
 * secumon-collector: the command line. Parses argv, runs one command, maps errors to exit codes
 * (0 ok, 1 runtime failure, 2 bad usage or configuration) and prints them as one structured log line.
 */
import { BACKUP_HELP, backup, restore, setupCode } from "./cli/backup.ts";
import { checkConfig, HELP, help, migrate, serve, version } from "./cli/commands.ts";
import { SIMULATE_HELP, simulate } from "./cli/simulate.ts";
import { errorMessage, exitCodeFor, isCollectorError, UsageError } from "./lib/errors.ts";

Object.assign(HELP, BACKUP_HELP, SIMULATE_HELP);

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const out = (s: string) => process.stdout.write(s.endsWith("\n") ? s : `${s}\n`);
  switch (cmd) {
    case "serve":
      return serve(rest);
    case "migrate":
      return migrate(rest);
    case "backup":
      return backup(rest);
    case "restore":
      return restore(rest);
    case "setup-code":
      return setupCode(rest, out);
    case "simulate":
      return simulate(rest);
    case "check-config":
      return checkConfig(rest, out);
    case "version":
      if (rest.includes("--help") || rest.includes("-h")) return help("version");
      if (rest.length) throw new UsageError(`version: unexpected argument ${rest[0]}`);
      return version(out);
    case "--version":
      return version(out);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      return help(rest[0] ?? "main");
    default:
      process.stderr.write(`unknown command: ${cmd}\n\n${HELP.main}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    const line = {
      level: "fatal",
      time: new Date().toISOString(),
      service: "secumon-collector",
      code: isCollectorError(err) ? err.code : "INTERNAL",
      msg: errorMessage(err),
    };
    process.stderr.write(`${JSON.stringify(line)}\n`);
    // a person at a terminal also gets the message as plain text (multi-line problem lists stay readable)
    if (process.stderr.isTTY) process.stderr.write(`\nsecumon-collector: ${line.msg}\n`);
    if (!isCollectorError(err) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exit(exitCodeFor(err));
  },
);
