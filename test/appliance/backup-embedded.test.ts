/**
 * Backup of a running collector on its embedded PostgreSQL (online, through the collector's own socket), then
 * restore into a fresh data directory (the restore starts a new embedded cluster for the duration), then a
 * collector started on the restored directory is ready and serves the same data with the same keys.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Collector } from "../../src/app/collector.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { connect } from "../../src/storage/db.ts";
import { freePort } from "../../src/supervisor/ports.ts";
import { runCli } from "../support/cli.ts";
import { startCollector, testConfig } from "../support/collector.ts";
import { tempDir } from "../support/tmp.ts";

const running: Collector[] = [];
afterAll(async () => {
  await Promise.all(running.map((c) => c.stop()));
});

async function query<T>(url: string, fn: (sql: ReturnType<typeof connect>) => Promise<T>): Promise<T> {
  const sql = connect(url, { max: 1, log: silentLogger() });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

describe("backup and restore with the embedded database", () => {
  test("online backup of a running collector, restore into a fresh data directory, collector ready on it", async () => {
    const port1 = freePort();
    const config1 = testConfig({ database: { embedded: { port: port1 } }, roles: ["ingestion"] });
    const c1 = await startCollector(config1);
    running.push(c1);
    const dir1 = config1.data_dir;
    await query(c1.databaseUrl, (sql) => sql`insert into tenants (name, slug) values ('Site', 'site-one')`);

    const key = join(tempDir(), "k");
    writeFileSync(key, "an-operator-key-of-sufficient-length\n", { mode: 0o600 });
    const out = join(tempDir(), "online.bak");
    let r = await runCli(["backup", "--data-dir", dir1, "--out", out, "--key-file", key], {
      env: { SECUMON_DATABASE__EMBEDDED__PORT: String(port1) },
      timeoutMs: 60_000,
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("embedded cluster of collector pid");
    await c1.stop();

    const dir2 = tempDir("secumon-restored-");
    const port2 = freePort();
    r = await runCli(["restore", "--data-dir", dir2, "--in", out, "--key-file", key], {
      env: { SECUMON_DATABASE__EMBEDDED__PORT: String(port2) },
      timeoutMs: 90_000,
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir2, "secrets/encryption.key"), "utf8")).toBe(
      readFileSync(join(dir1, "secrets/encryption.key"), "utf8"),
    );

    const c2 = await startCollector(
      testConfig({ data_dir: dir2, database: { embedded: { port: port2 } }, roles: ["ingestion"] }),
    );
    running.push(c2);
    expect((await fetch(`${c2.base}/ready`)).status).toBe(200);
    const slugs = await query(c2.databaseUrl, (sql) => sql<{ slug: string }[]>`select slug from tenants`);
    expect(slugs.map((s) => s.slug)).toEqual(["site-one"]);
    await c2.stop();
  }, 120_000);
});
