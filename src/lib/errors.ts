/**
 * The collector's error taxonomy, mapped to exit codes and HTTP statuses in one place.
 * Every message says what went wrong *and what the operator should do next*.
 */
export type ErrorCode =
  | "CONFIG_INVALID"
  | "USAGE"
  | "SECRET_UNRESOLVED"
  | "PORT_IN_USE"
  | "DATA_DIR_UNWRITABLE"
  | "DEPENDENCY_MISSING"
  | "CHILD_FAILED"
  | "MIGRATION_FAILED"
  | "MIGRATION_CHECKSUM"
  | "DATABASE_UNAVAILABLE"
  | "DEPENDENCY_UNAVAILABLE"
  | "NOT_FOUND"
  | "BAD_REQUEST"
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "CONFLICT"
  | "RATE_LIMITED"
  | "INTERNAL";

export class CollectorError extends Error {
  override readonly name: string = "CollectorError";
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra structured detail safe to show the user (never secrets). */
  readonly details: unknown;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { status?: number; cause?: unknown; details?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.status = opts.status ?? defaultStatus(code);
    this.details = opts.details;
  }
}

/** Bad configuration or command line: exit code 2. */
export class ConfigError extends CollectorError {
  override readonly name = "ConfigError";
  /** Every problem found, each with its path in the document (`/api/port: Expected integer`). */
  readonly problems: string[];
  constructor(problems: string[], opts: { code?: ErrorCode; cause?: unknown } = {}) {
    const head =
      problems.length === 1 ? "invalid configuration" : `invalid configuration (${problems.length} problems)`;
    super(opts.code ?? "CONFIG_INVALID", `${head}:\n  - ${problems.join("\n  - ")}`, { cause: opts.cause });
    this.problems = problems;
  }
}

export class UsageError extends CollectorError {
  override readonly name = "UsageError";
  constructor(message: string) {
    super("USAGE", message);
  }
}

function defaultStatus(code: ErrorCode): number {
  switch (code) {
    case "NOT_FOUND":
      return 404;
    case "BAD_REQUEST":
    case "CONFIG_INVALID":
    case "USAGE":
      return 400;
    case "UNAUTHENTICATED":
      return 401;
    case "FORBIDDEN":
      return 403;
    case "CONFLICT":
      return 409;
    case "RATE_LIMITED":
      return 429;
    case "DATABASE_UNAVAILABLE":
    case "DEPENDENCY_UNAVAILABLE":
      return 503;
    default:
      return 500;
  }
}

export const isCollectorError = (e: unknown): e is CollectorError => e instanceof CollectorError;
export const isConfigError = (e: unknown): e is ConfigError =>
  e instanceof ConfigError || e instanceof UsageError;

/** Process exit code for an error that ends a CLI command: 2 for usage/config, 1 for everything else. */
export function exitCodeFor(e: unknown): number {
  if (isConfigError(e)) return 2;
  if (isCollectorError(e) && (e.code === "SECRET_UNRESOLVED" || e.code === "CONFIG_INVALID")) return 2;
  return 1;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
