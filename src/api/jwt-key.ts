import { CollectorError } from "../lib/errors.ts";
import { dataSecret } from "../security/keyring.ts";

/** The JWT signing key: api.auth.jwt_secret, or a random key generated once under data_dir/secrets/. */
export function jwtKey(secret: string, dataDir: string): Uint8Array {
  if (!secret) return dataSecret(dataDir, "jwt.key", 32);
  const key = new TextEncoder().encode(secret);
  if (key.length < 32) {
    throw new CollectorError(
      "CONFIG_INVALID",
      "api.auth.jwt_secret is shorter than 32 bytes: use `openssl rand -base64 48`, or leave it empty to generate one",
    );
  }
  return key;
}
