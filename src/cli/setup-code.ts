/**
 * The one-time setup code: proves that whoever creates the first administrator (`POST /api/v1/setup`) can see
 * the appliance's console or is root on it. Kept in `data_dir/secrets/setup-code` (0600, the collector's user),
 * created at first boot by `secumon-collector setup-code --create`, removed once the first administrator
 * exists. Format: 20 characters of Crockford base32 (100 random bits) in groups of five,
 * `K7QMD-3XPA9-RTDW2-HF8NC`; compare it case-insensitively, ignoring dashes and spaces.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CollectorError } from "../lib/errors.ts";
import { writeDataFile } from "./data-files.ts";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; // Crockford: no I, L, O, U

export const setupCodePath = (dataDir: string): string => join(dataDir, "secrets", "setup-code");

export function newSetupCode(): string {
  const bytes = randomBytes(20);
  const chars = [...bytes].map((b) => ALPHABET[b & 31]).join("");
  return chars.match(/.{5}/g)!.join("-");
}

/** Canonical form for comparison: upper case, no dashes or spaces. */
export const normalizeSetupCode = (s: string): string => s.toUpperCase().replace(/[\s-]/g, "");

/** The current code, or null when there is none (not generated, or already used). */
export function readSetupCode(dataDir: string): string | null {
  const file = setupCodePath(dataDir);
  if (!existsSync(file)) return null;
  const code = readFileSync(file, "utf8").trim();
  return code === "" ? null : code;
}

/** The current code, creating one when there is none. */
export function ensureSetupCode(dataDir: string): { code: string; created: boolean } {
  const existing = readSetupCode(dataDir);
  if (existing) return { code: existing, created: false };
  if (!existsSync(dataDir)) {
    throw new CollectorError(
      "DATA_DIR_UNWRITABLE",
      `the data directory ${dataDir} does not exist; create it (owned by the collector's user) or pass --data-dir`,
    );
  }
  const code = newSetupCode();
  writeDataFile(dataDir, "secrets/setup-code", Buffer.from(`${code}\n`), 0o600);
  return { code, created: true };
}
