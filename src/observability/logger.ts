/**
 * Structured JSON logs (pino) with a level. One root logger; components take `log.child({ component })`.
 * Secrets never reach here: config values are redacted before logging, and known secret keys are censored
 * as a second line of defence.
 */
import pino from "pino";

export type Logger = pino.Logger;
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

export function createLogger(opts: { level?: LogLevel; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? "info",
      base: { service: "secumon-collector" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [
          "password",
          "*.password",
          "secret",
          "*.secret",
          "token",
          "*.token",
          "authorization",
          "*.authorization",
        ],
        censor: "[redacted]",
      },
    },
    opts.destination ?? pino.destination({ fd: 1, sync: true }),
  );
}

/** A logger that writes nothing (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
