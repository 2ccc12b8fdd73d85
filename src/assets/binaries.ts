/**
 * Executables the collector supervises. In development they come from vendor/bin; in the compiled binary
 * they live inside it (under /$bunfs/), where they cannot be executed: copy them out to the data directory
 * once per version, chmod 755, then spawn the copy.
 */
import { chmodSync, existsSync, mkdirSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { CollectorError } from "../lib/errors.ts";
import { embeddedBinaries } from "./embedded.gen.ts";

export async function executable(name: "nats-server" | "wireguard-go", dataDir: string): Promise<string> {
  const override = process.env[`SECUMON_${name.toUpperCase().replace("-", "_")}_BIN`];
  if (override) return override;
  const embedded = embeddedBinaries[name];
  if (!embedded) {
    throw new CollectorError(
      "DEPENDENCY_MISSING",
      `${name} is not bundled in this build. Run \`make vendor\` (or \`make build\`) to build it from its pinned Go module.`,
    );
  }
  if (!embedded.startsWith("/$bunfs/")) return embedded;
  const size = statSync(embedded).size;
  const dir = join(dataDir, "bin");
  const target = join(dir, `${name}-${size}`);
  if (!existsSync(target) || statSync(target).size !== size) {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const tmp = `${target}.tmp-${process.pid}`;
    // copyFile cannot read /$bunfs; Bun.file can
    await Bun.write(tmp, Bun.file(embedded));
    chmodSync(tmp, 0o755);
    renameSync(tmp, target);
  }
  return target;
}
