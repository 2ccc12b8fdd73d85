/** The configuration subsystem: schema, loading and validation, secret resolution, redaction. */
export { ENV_PREFIX, envName } from "./env.ts";
export { type LoadOptions, loadConfig } from "./load.ts";
export { parseSecretRef, type SecretRef } from "./refs.ts";
export {
  type Config,
  type ConfigOverrides,
  ConfigSchema,
  isSecret,
  parseDuration,
  ROLES,
  type Role,
  SECRET_PATHS,
  Secret,
} from "./schema.ts";
export { REDACTED, type ResolveOptions, redact, resolveSecrets } from "./secrets.ts";
