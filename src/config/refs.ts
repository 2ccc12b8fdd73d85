/**
 * Secret references, the values a `Secret()` field may hold:
 * - `env:NAME`: the environment variable NAME;
 * - `file:/abs/path`: the file's content, trailing newlines removed;
 * - `ovh://secrets/PATH` or `ovh://secrets/PATH#KEY`: OVHcloud Secret Manager, secret PATH, key KEY of its
 *   latest version (KEY may be left out when the secret holds a single key);
 * - anything else: the secret itself, literally.
 */
export type SecretRef =
  | { kind: "empty" }
  | { kind: "literal" }
  | { kind: "env"; name: string }
  | { kind: "file"; path: string }
  | { kind: "ovh"; path: string; key: string | undefined }
  | { kind: "invalid"; problem: string };

const OVH = /^ovh:\/\/secrets\/([A-Za-z0-9_.:/=@%-]+)(?:#([^#]+))?$/;

export function parseSecretRef(value: string): SecretRef {
  if (value === "") return { kind: "empty" };
  if (value.startsWith("env:")) {
    const name = value.slice(4);
    return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)
      ? { kind: "env", name }
      : { kind: "invalid", problem: "an env: reference needs a variable name, as in env:JWT_SECRET" };
  }
  if (value.startsWith("file:")) {
    const path = value.slice(5);
    return path.startsWith("/")
      ? { kind: "file", path }
      : {
          kind: "invalid",
          problem: "a file: reference needs an absolute path, as in file:/etc/secumon/jwt-secret",
        };
  }
  if (value.startsWith("ovh:")) {
    const m = OVH.exec(value);
    return m
      ? { kind: "ovh", path: m[1]!, key: m[2] }
      : { kind: "invalid", problem: "an ovh: reference reads ovh://secrets/PATH or ovh://secrets/PATH#KEY" };
  }
  return { kind: "literal" };
}

/** True for references (shown as they are by `redact`), false for literal secrets. */
export const isReference = (value: string): boolean => {
  const kind = parseSecretRef(value).kind;
  return kind === "env" || kind === "file" || kind === "ovh";
};
