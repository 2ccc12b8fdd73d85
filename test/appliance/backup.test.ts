/**
 * `secumon-collector backup` / `restore` end to end, through the CLI, against the real test PostgreSQL cluster:
 * a backup restored into a fresh database and data directory gives the same rows and the same secrets (a value
 * sealed before the backup opens after it); every refusal says what to do and changes nothing.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { silentLogger } from "../../src/observability/logger.ts";
import { dataSecret, loadKeyring } from "../../src/security/keyring.ts";
import { connect } from "../../src/storage/db.ts";
import { fatalOf, runCli } from "../support/cli.ts";
import { emptyDatabase, migratedSql } from "../support/pg.ts";
import { tempDir } from "../support/tmp.ts";

let srcUrl: string;
let srcDir: string;
let keyFile: string;
let backupFile: string;
let tenantId: string;
const TOTP = "JBSWY3DPEHPK3PXP";

const SECRET_FILES = ["pki/ca.crt", "pki/ca.key", "secrets/encryption.key", "secrets/jwt.key"];

async function rows(url: string) {
  const sql = connect(url, { max: 1, log: silentLogger() });
  try {
    return {
      tenants: await sql`select id, name, slug, settings from tenants order by id`,
      users:
        await sql`select id, tenant_id, email, password_hash, totp_secret_encrypted, role from users order by id`,
      migrations: (await sql<{ name: string }[]>`select name from schema_migrations order by name`).map(
        (r) => r.name,
      ),
    };
  } finally {
    await sql.end({ timeout: 2 });
  }
}

async function tables(url: string): Promise<number> {
  const sql = connect(url, { max: 1, log: silentLogger() });
  try {
    const [r] = await sql<
      { n: number }[]
    >`select count(*)::int as n from pg_tables where schemaname = 'public'`;
    return r!.n;
  } finally {
    await sql.end({ timeout: 2 });
  }
}

const cli = (args: string[], dbUrl: string) =>
  runCli(args, { env: { SECUMON_DATABASE__URL: dbUrl, SECUMON_LOGGING__LEVEL: "warn" }, timeoutMs: 60_000 });

beforeAll(async () => {
  const { sql, url } = await migratedSql();
  srcUrl = url;
  srcDir = tempDir("secumon-bk-src-");
  const keyring = loadKeyring({ encryptionKey: "", dataDir: srcDir }); // generates secrets/encryption.key
  dataSecret(srcDir, "jwt.key");
  mkdirSync(join(srcDir, "pki"), { mode: 0o700 });
  writeFileSync(
    join(srcDir, "pki/ca.crt"),
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    { mode: 0o644 },
  );
  writeFileSync(
    join(srcDir, "pki/ca.key"),
    "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    { mode: 0o600 },
  );
  // what must stay out of a backup
  for (const d of ["nats/jetstream", "postgres/cluster", "bin", "tmp"])
    mkdirSync(join(srcDir, d), { recursive: true });
  writeFileSync(join(srcDir, "nats/jetstream/blk.dat"), "stream data");
  writeFileSync(join(srcDir, "postgres/cluster/PG_VERSION"), "15\n");
  writeFileSync(join(srcDir, "bin/nats-server-1"), "ELF");
  writeFileSync(join(srcDir, "secrets/setup-code"), "c2V0dXAtY29kZS1mb3ItdGVzdHMtb25seSE=\n", {
    mode: 0o600,
  });

  const [t] = await sql<
    { id: string }[]
  >`insert into tenants (name, slug, settings) values ('Acme', 'acme', '{"tz":"Europe/Paris"}') returning id`;
  tenantId = t!.id;
  const userId = crypto.randomUUID();
  const sealed = keyring.seal(TOTP, `users.totp_secret:${userId}`);
  await sql`insert into users (id, tenant_id, email, password_hash, totp_secret_encrypted, role)
            values (${userId}, ${tenantId}, 'admin@acme.test', '$argon2id$v=19$m=65536,t=2,p=1$x$y', ${sealed}, 'admin')`;

  keyFile = join(tempDir(), "backup.key");
  writeFileSync(
    join(keyFile),
    `${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}\n`,
    { mode: 0o600 },
  );
  backupFile = join(tempDir(), "site.secumon-backup");
  const r = await cli(["backup", "--data-dir", srcDir, "--out", backupFile, "--key-file", keyFile], srcUrl);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
});

describe("backup", () => {
  test("writes one 0600 file, no .partial left, nothing in clear", () => {
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    expect(existsSync(`${backupFile}.partial`)).toBe(false);
    const raw = readFileSync(backupFile);
    expect(raw.subarray(0, 8).toString()).toBe("SECUMBAK");
    expect(raw.includes(Buffer.from("admin@acme.test"))).toBe(false);
    expect(raw.includes(readFileSync(join(srcDir, "secrets/encryption.key")))).toBe(false);
  });

  test("refuses to overwrite, and needs a real key file", async () => {
    let r = await cli(["backup", "--data-dir", srcDir, "--out", backupFile, "--key-file", keyFile], srcUrl);
    expect(r.code).toBe(2);
    expect(fatalOf(r.stderr).msg).toContain("already exists");
    const out = join(tempDir(), "x.bak");
    r = await cli(
      ["backup", "--data-dir", srcDir, "--out", out, "--key-file", join(tempDir(), "nokey")],
      srcUrl,
    );
    expect(r.code).toBe(2);
    expect(fatalOf(r.stderr).msg).toContain("does not exist; create one with");
    r = await cli(["backup", "--data-dir", srcDir, "--out", out], srcUrl);
    expect(r.code).toBe(2);
    expect(fatalOf(r.stderr).msg).toContain("--key-file is required");
    expect(existsSync(out) || existsSync(`${out}.partial`)).toBe(false);
  });

  test("an unreachable database fails clearly and leaves no file", async () => {
    const out = join(tempDir(), "y.bak");
    const r = await cli(
      ["backup", "--data-dir", srcDir, "--out", out, "--key-file", keyFile],
      "postgres://secumon@localhost/secumon?host=/nonexistent-socket-dir",
    );
    expect(r.code).toBe(1);
    expect(fatalOf(r.stderr).msg).toMatch(/cannot connect to PostgreSQL|DATABASE|socket/i);
    expect(existsSync(out) || existsSync(`${out}.partial`)).toBe(false);
  });
});

describe("restore", () => {
  test("into a fresh database and data directory: same rows, same secrets, sealed data still opens", async () => {
    const url = await emptyDatabase();
    const dir = tempDir("secumon-bk-dst-");
    const r = await runCli(["restore", "--data-dir", dir, "--in", backupFile, "--key-file", keyFile], {
      env: { SECUMON_DATABASE__URL: url },
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`restored ${backupFile}`);

    const [a, b] = [await rows(srcUrl), await rows(url)];
    expect(b).toEqual(a);
    expect(b.tenants).toHaveLength(1);
    expect(b.migrations.length).toBeGreaterThan(0);
    for (const f of SECRET_FILES) {
      expect(readFileSync(join(dir, f)).equals(readFileSync(join(srcDir, f)))).toBe(true);
      expect(statSync(join(dir, f)).mode & 0o777).toBe(statSync(join(srcDir, f)).mode & 0o777);
    }
    for (const f of ["nats", "postgres", "bin", "tmp", "secrets/setup-code"])
      expect(existsSync(join(dir, f))).toBe(false);
    const user = b.users[0]!;
    const keyring = loadKeyring({ encryptionKey: "", dataDir: dir });
    expect(keyring.openText(user.totp_secret_encrypted, `users.totp_secret:${user.id}`)).toBe(TOTP);
  });

  test("a wrong key: clear error, nothing changed", async () => {
    const url = await emptyDatabase();
    const dir = tempDir();
    const other = join(tempDir(), "other.key");
    writeFileSync(other, "a-different-operator-key-of-enough-length\n", { mode: 0o600 });
    const r = await cli(["restore", "--data-dir", dir, "--in", backupFile, "--key-file", other], url);
    expect(r.code).toBe(1);
    expect(fatalOf(r.stderr).msg).toContain("the key file does not match backup");
    expect(await tables(url)).toBe(0);
    expect(existsSync(join(dir, "secrets"))).toBe(false);
  });

  test("a truncated or corrupted file: clear error, nothing changed", async () => {
    const url = await emptyDatabase();
    const dir = tempDir();
    const raw = readFileSync(backupFile);
    const cut = join(tempDir(), "cut.bak");
    writeFileSync(cut, raw);
    truncateSync(cut, raw.length - 100);
    const bad = join(tempDir(), "bad.bak");
    const flipped = Buffer.from(raw);
    const mid = Math.floor(raw.length / 2);
    flipped[mid] = flipped[mid]! ^ 0x40;
    writeFileSync(bad, flipped);
    for (const f of [cut, bad]) {
      const r = await cli(["restore", "--data-dir", dir, "--in", f, "--key-file", keyFile], url);
      expect(r.code).toBe(1);
      expect(fatalOf(r.stderr).msg).toContain("is damaged");
      expect(fatalOf(r.stderr).msg).toContain("Nothing was restored");
    }
    expect(await tables(url)).toBe(0);
    expect(existsSync(join(dir, "secrets"))).toBe(false);
  });

  test("a database that has tables, or secrets that differ, need --force; --force brings the backup back", async () => {
    const { sql, url } = await migratedSql(); // a collector that already started once: schema, no data
    const dir = tempDir();
    loadKeyring({ encryptionKey: "", dataDir: dir }); // its own, different encryption key
    let r = await cli(["restore", "--data-dir", dir, "--in", backupFile, "--key-file", keyFile], url);
    expect(r.code).toBe(1);
    expect(fatalOf(r.stderr).msg).toContain("secrets/encryption.key");
    expect(fatalOf(r.stderr).msg).toContain("--force");
    writeFileSync(join(dir, "secrets/encryption.key"), readFileSync(join(srcDir, "secrets/encryption.key")));
    r = await cli(["restore", "--data-dir", dir, "--in", backupFile, "--key-file", keyFile], url);
    expect(r.code).toBe(1);
    expect(fatalOf(r.stderr).msg).toContain("already has");
    expect((await sql`select count(*)::int as n from tenants`)[0]!.n).toBe(0);

    writeFileSync(join(dir, "secrets/setup-code"), "c2V0dXAtY29kZS1mb3ItdGVzdHMtb25seSE=\n");
    r = await cli(["restore", "--data-dir", dir, "--in", backupFile, "--key-file", keyFile, "--force"], url);
    expect(r.code).toBe(0);
    expect(await rows(url)).toEqual(await rows(srcUrl));
    // the restored database has an administrator: the fresh machine's setup code is gone
    expect(existsSync(join(dir, "secrets/setup-code"))).toBe(false);
  });

  test("refuses while a collector runs on the data directory", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "collector.pid"), `${process.pid}\n`); // this test process: alive
    const r = await cli(
      ["restore", "--data-dir", dir, "--in", backupFile, "--key-file", keyFile],
      await emptyDatabase(),
    );
    expect(r.code).toBe(1);
    expect(fatalOf(r.stderr).msg).toContain("stop it first");
  });

  test("a backup from a newer collector (unknown migration) is refused before anything changes", async () => {
    const { sql, url } = await migratedSql();
    await sql`insert into schema_migrations (name, checksum, duration_ms) values ('999_from_the_future', 'x', 1)`;
    const newer = join(tempDir(), "newer.bak");
    let r = await cli(["backup", "--data-dir", tempDir(), "--out", newer, "--key-file", keyFile], url);
    expect(r.code).toBe(0);
    const target = await emptyDatabase();
    r = await cli(["restore", "--data-dir", tempDir(), "--in", newer, "--key-file", keyFile], target);
    expect(r.code).toBe(1);
    expect(fatalOf(r.stderr).msg).toContain("999_from_the_future");
    expect(fatalOf(r.stderr).msg).toContain("newer collector");
    expect(await tables(target)).toBe(0);
  });
});

describe("setup-code", () => {
  test("--create makes a 0600 code once; printing it again gives the same; none is a clear error", async () => {
    const dir = tempDir();
    let r = await runCli(["setup-code", "--data-dir", dir]);
    expect(r.code).toBe(1);
    expect(fatalOf(r.stderr).msg).toContain("no setup code");
    r = await runCli(["setup-code", "--data-dir", dir, "--create"]);
    expect(r.code).toBe(0);
    const code = r.stdout.trim();
    // the API's format (src/api/routes/setup.ts): 24 random bytes, base64
    expect(Buffer.from(code, "base64")).toHaveLength(24);
    expect(statSync(join(dir, "secrets/setup-code")).mode & 0o777).toBe(0o600);
    expect((await runCli(["setup-code", "--data-dir", dir, "--create"])).stdout.trim()).toBe(code);
    expect((await runCli(["setup-code", "--data-dir", dir])).stdout.trim()).toBe(code);
  });

  for (const cmd of ["backup", "restore", "setup-code"]) {
    test(`${cmd} --help prints usage`, async () => {
      const r = await runCli([cmd, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: secumon-collector ${cmd}`);
    });
  }
});
