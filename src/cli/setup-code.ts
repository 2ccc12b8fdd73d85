/**
 * The one-time setup code: proves that whoever creates the first administrator (`POST /api/v1/setup`) can see
 * the appliance's console or is root on it. It is the API's (src/api/routes/setup.ts): kept in
 * `data_dir/secrets/setup-code` (0600, the collector's user), made while no user exists and removed once one
 * does. The API makes it at start; the appliance's first boot makes it beforehand, with the same generator
 * (dataSecret: 24 random bytes, base64), so that the console can show it before the collector is up.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CollectorError } from "../lib/errors.ts";
import { dataSecret } from "../security/keyring.ts";
import { matchOwner } from "./data-files.ts";

const NAME = "setup-code";
const BYTES = 24;

export const setupCodePath = (dataDir: string): string => join(dataDir, "secrets", NAME);

/** The current code, or null when there is none (not made yet, or already used). */
export function readSetupCode(dataDir: string): string | null {
  const file = setupCodePath(dataDir);
  if (!existsSync(file)) return null;
  const code = readFileSync(file, "utf8").trim();
  return code === "" ? null : code;
}

/** The current code, making one when there is none. */
export function ensureSetupCode(dataDir: string): { code: string; created: boolean } {
  const existing = readSetupCode(dataDir);
  if (existing) return { code: existing, created: false };
  if (!existsSync(dataDir)) {
    throw new CollectorError(
      "DATA_DIR_UNWRITABLE",
      `the data directory ${dataDir} does not exist; create it (owned by the collector's user) or pass --data-dir`,
    );
  }
  dataSecret(dataDir, NAME, BYTES);
  // run as root: the collector's user must own what was made
  matchOwner(join(dataDir, "secrets"), dataDir);
  matchOwner(setupCodePath(dataDir), dataDir);
  return { code: readSetupCode(dataDir)!, created: true };
}
