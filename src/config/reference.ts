/**
 * The configuration reference (REFERENCE.md beside this file), rendered from the schema so that it cannot
 * drift: `bun src/config/reference.ts` rewrites it; a test checks the committed file matches.
 */
import type { TSchema } from "@sinclair/typebox";
import { envName } from "./env.ts";
import { ConfigSchema, childrenOf, isDuration, isSecret, leaves } from "./schema.ts";

const INTRO = `# Configuration reference

<!-- Generated from src/config/schema.ts by \`bun src/config/reference.ts\`; do not edit by hand. -->

The collector reads one YAML document. Every key is optional: an empty file (or none) runs every role but
\`uplink\` on one machine, with an embedded nats-server and PostgreSQL under \`data_dir\`, listening on loopback
only. Unknown keys are errors, and every problem is reported at once, each with its place in the document
(\`/api/port: expected integer, got "80a"\`). An empty value (\`api:\` with nothing under it) means "not set".

**Precedence**, lowest to highest: defaults, the file, \`SECUMON_*\` environment variables, command-line flags.

**Environment variables**: \`SECUMON_\` followed by the key's path, upper-cased, levels joined by a double
underscore: \`SECUMON_API__PORT=9090\`, \`SECUMON_DATABASE__URL=postgres://…\`, \`SECUMON_DATA_DIR=/srv/secumon\`.
Integers and booleans (\`true\`/\`false\`, \`1\`/\`0\`, \`yes\`/\`no\`) are parsed; lists are comma-separated
(\`SECUMON_ROLES=gateway,ingestion\`). A \`SECUMON_\` variable naming no key is an error. \`SECUMON_LOG_LEVEL\` is
accepted as a short form of \`SECUMON_LOGGING__LEVEL\`. Not config keys, and left alone: \`SECUMON_CONFIG\` (the
file), \`SECUMON_NATS_SERVER_BIN\` and \`SECUMON_WIREGUARD_GO_BIN\` (executables to run instead of the bundled ones),
\`SECUMON_TEST_*\` (the test harness).

**Durations**: a whole number and a unit, \`ms\`, \`s\`, \`m\`, \`h\` or \`d\`: \`500ms\`, \`30s\`, \`72h\`, \`30d\`.

**Secrets**: a field of type _secret_ holds either the secret itself or a reference resolved at start:
\`env:NAME\` (environment variable), \`file:/absolute/path\` (file content, trailing newline removed), or
\`ovh://secrets/PATH\` / \`ovh://secrets/PATH#KEY\` (OVHcloud Secret Manager, see \`secrets.ovh\`; \`#KEY\` picks
one key of the secret, needed when it holds several). Secrets are never logged; \`check-config\` prints
references as written and literal secrets as \`[redacted]\`.
`;

export function renderReference(): string {
  const sections: string[] = [INTRO];
  const top = childrenOf(ConfigSchema) ?? {};
  const scalars = Object.entries(top).filter(([, s]) => !childrenOf(s));
  sections.push(
    table(
      "Top level",
      "Keys at the root of the document.",
      scalars.map(([k, s]) => ({ path: [k], schema: s })),
    ),
  );
  for (const [key, s] of Object.entries(top)) {
    if (childrenOf(s)) sections.push(table(`\`${key}\``, String(s.description ?? ""), leaves(s, [key])));
  }
  return `${sections.join("\n")}`;
}

function table(title: string, description: string, rows: { path: string[]; schema: TSchema }[]): string {
  const header = ["Key", "Type", "Default", "Environment variable", "Meaning"];
  const body = rows.map(({ path, schema }) =>
    [
      `\`${path.join(".")}\``,
      typeOf(schema),
      defaultOf(schema),
      `\`${envName(path)}\``,
      String(schema.description ?? ""),
    ].map((c) => c.replaceAll("|", "\\|")),
  );
  // Columns padded as the formatter (biome) lays out Markdown tables, so the committed file stays stable.
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const row = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  const rule = `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`;
  return [`## ${title}`, "", description, "", row(header), rule, ...body.map(row), ""].join("\n");
}

function typeOf(s: TSchema): string {
  if (isSecret(s)) return "secret";
  if (isDuration(s)) return "duration";
  if (s["x-port"]) return "port";
  if (typeof s["x-expected"] === "string") return s["x-expected"].replaceAll('"', "`");
  if (s.const !== undefined) return `\`${s.const}\``;
  const literals = (s.anyOf as TSchema[] | undefined)?.map((a) => `\`${a.const}\``);
  if (literals) return `one of ${literals.join(", ")}`;
  if (s.type === "array") {
    const item = typeOf(s.items as TSchema);
    return item === "string" ? "list of strings" : `list, each ${item}`;
  }
  return String(s.type);
}

function defaultOf(s: TSchema): string {
  const d: unknown = s.default;
  if (Array.isArray(d)) return d.length === 0 ? "`[]`" : `\`[${d.join(", ")}]\``;
  if (d === "") return "empty";
  return `\`${String(d)}\``;
}

if (import.meta.main) {
  const file = new URL("./REFERENCE.md", import.meta.url).pathname;
  await Bun.write(file, renderReference());
  console.log(`wrote ${file}`);
}
