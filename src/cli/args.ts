/** A small, strict command-line parser: unknown flags and missing values are usage errors (exit 2). */
import { UsageError } from "../lib/errors.ts";

export interface FlagSpec {
  /** Takes a value (`--config FILE`) or not (`--help`). */
  value: boolean;
}

export interface Parsed {
  flags: Record<string, string | true>;
  positionals: string[];
}

export function parseArgs(argv: string[], spec: Record<string, FlagSpec>, command: string): Parsed {
  const flags: Record<string, string | true> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === "-h") {
      flags.help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const s = spec[name];
    if (!s)
      throw new UsageError(
        `${command}: unknown option --${name}; see \`secumon-collector ${command} --help\``,
      );
    if (!s.value) {
      if (eq !== -1) throw new UsageError(`${command}: --${name} takes no value`);
      flags[name] = true;
      continue;
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined || value === "") throw new UsageError(`${command}: --${name} needs a value`);
    flags[name] = value;
  }
  return { flags, positionals };
}
