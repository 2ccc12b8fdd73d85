/** The command line: help, version, exit codes, and the clear errors an operator can run into. */
import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../src/supervisor/ports.ts";
import { fatalOf, runCli } from "./support/cli.ts";
import { tempDir } from "./support/tmp.ts";

describe("cli", () => {
  test("version prints the version and exits 0", async () => {
    const r = await runCli(["version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^secumon-collector \d+\.\d+\.\d+ \(bun /);
  });

  for (const cmd of ["serve", "migrate", "check-config", "version"]) {
    test(`${cmd} --help prints usage and exits 0`, async () => {
      const r = await runCli([cmd, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: secumon-collector ${cmd}`);
    });
  }

  test("no command prints the overview", async () => {
    const r = await runCli([]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Commands:");
  });

  test("unknown command exits 2", async () => {
    const r = await runCli(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command: frobnicate");
  });

  test("unknown option exits 2 and names it", async () => {
    const r = await runCli(["serve", "--bogus"]);
    expect(r.code).toBe(2);
    expect(fatalOf(r.stderr).msg).toBe("serve: unknown option --bogus; see `secumon-collector serve --help`");
  });

  test("option without its value exits 2", async () => {
    const r = await runCli(["serve", "--config"]);
    expect(r.code).toBe(2);
    expect(fatalOf(r.stderr).msg).toBe("serve: --config needs a value");
  });

  test("an invalid config file exits 2 and lists every problem", async () => {
    const file = join(tempDir(), "bad.yaml");
    writeFileSync(file, "api:\n  port: eighty\n  prot: 1\n");
    const r = await runCli(["check-config", "--config", file]);
    expect(r.code).toBe(2);
    const msg = fatalOf(r.stderr).msg;
    expect(msg).toContain("/api/port");
    expect(msg).toContain("/api/prot");
  });

  test("serve with an invalid --roles exits 2", async () => {
    const r = await runCli(["serve", "--roles", "gateway,teleporter", "--data-dir", tempDir()]);
    expect(r.code).toBe(2);
    expect(fatalOf(r.stderr).msg).toContain("/roles/1");
  });

  test("check-config prints the effective config with secrets redacted", async () => {
    const file = join(tempDir(), "good.yaml");
    writeFileSync(file, "database:\n  url: env:TEST_DB_URL\napi:\n  port: 9999\n");
    const r = await runCli(["check-config", "--config", file], {
      env: { TEST_DB_URL: "postgres://u:hunter2-very-secret@db.example:5432/x" },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("port: 9999");
    expect(r.stdout + r.stderr).not.toContain("hunter2-very-secret");
  });

  test("a secret reference to a missing variable exits 2 and names the variable", async () => {
    const file = join(tempDir(), "s.yaml");
    writeFileSync(file, "database:\n  url: env:NOT_SET_ANYWHERE\n");
    const r = await runCli(["check-config", "--config", file]);
    expect(r.code).toBe(2);
    expect(fatalOf(r.stderr).msg).toContain("NOT_SET_ANYWHERE");
  });

  test("serve on a taken API port: exit 1 with one clear message", async () => {
    const port = freePort();
    const blocker = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    try {
      const r = await runCli(["serve", "--data-dir", tempDir()], {
        env: { SECUMON_API__PORT: String(port) },
      });
      expect(r.code).toBe(1);
      const f = fatalOf(r.stderr);
      expect(f.code).toBe("PORT_IN_USE");
      expect(f.msg).toBe(
        `port 127.0.0.1:${port} (api.port) is already in use by another process. ` +
          "Stop that process, or choose another port with api.port in the config file or SECUMON_API__PORT.",
      );
      expect(r.stderr).not.toContain("    at "); // no stack trace
    } finally {
      blocker.stop(true);
    }
  });

  test("serve on a taken NATS port: exit 1 naming nats.port", async () => {
    const port = freePort();
    const blocker = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    try {
      const r = await runCli(["serve", "--data-dir", tempDir(), "--roles", "ingestion"], {
        env: {
          SECUMON_API__PORT: String(freePort()),
          SECUMON_NATS__PORT: String(port),
          SECUMON_DATABASE__EMBEDDED__PORT: String(freePort()),
        },
        timeoutMs: 60_000,
      });
      expect(r.code).toBe(1);
      const f = fatalOf(r.stderr);
      expect(f.code).toBe("PORT_IN_USE");
      expect(f.msg).toContain("(nats.port)");
      expect(f.msg).toContain("SECUMON_NATS__PORT");
    } finally {
      blocker.stop(true);
    }
  });

  test("an unwritable data directory: exit 1 saying what to do", async () => {
    const file = join(tempDir(), "a-file");
    writeFileSync(file, "");
    const r = await runCli(["serve", "--data-dir", join(file, "data")], {
      env: { SECUMON_API__PORT: String(freePort()) },
    });
    expect(r.code).toBe(1);
    const f = fatalOf(r.stderr);
    expect(f.code).toBe("DATA_DIR_UNWRITABLE");
    expect(f.msg).toContain("choose another with --data-dir");
  });

  test("an external database that does not answer: exit 1 naming database.url, without a stack trace", async () => {
    const r = await runCli(["serve", "--data-dir", tempDir(), "--roles", "api"], {
      env: {
        SECUMON_API__PORT: String(freePort()),
        SECUMON_DATABASE__URL: `postgres://secumon:not-this-password@127.0.0.1:${freePort()}/secumon`,
      },
    });
    expect(r.code).toBe(1);
    const f = fatalOf(r.stderr);
    expect(f.code).toBe("DATABASE_UNAVAILABLE");
    expect(f.msg).toContain("Check database.url in the config");
    expect(r.stderr).not.toContain("not-this-password");
    expect(r.stderr).not.toContain("    at ");
  });

  test("an external NATS that does not answer: exit 1 naming nats.url", async () => {
    const r = await runCli(["serve", "--data-dir", tempDir(), "--roles", "ingestion"], {
      env: {
        SECUMON_API__PORT: String(freePort()),
        SECUMON_DATABASE__EMBEDDED__PORT: String(freePort()),
        SECUMON_NATS__URL: `nats://127.0.0.1:${freePort()}`,
      },
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(1);
    const f = fatalOf(r.stderr);
    expect(f.code).toBe("DEPENDENCY_UNAVAILABLE");
    expect(f.msg).toContain("Check nats.url in the config");
  });

  test("a missing PostgreSQL installation: exit 1 saying how to install it or use database.url", async () => {
    const empty = tempDir();
    mkdirSync(join(empty, "bin"));
    const r = await runCli(["serve", "--data-dir", tempDir()], {
      env: { SECUMON_API__PORT: String(freePort()), SECUMON_DATABASE__EMBEDDED__BIN_DIR: join(empty, "bin") },
    });
    expect(r.code).toBe(1);
    const f = fatalOf(r.stderr);
    expect(f.code).toBe("DEPENDENCY_MISSING");
    expect(f.msg).toContain("database.embedded.bin_dir");
  });
});
