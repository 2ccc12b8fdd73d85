import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, exitCodeFor } from "../lib/errors.ts";
import { envName } from "./env.ts";
import { loadConfig } from "./load.ts";

const tmp = mkdtempSync(join(tmpdir(), "secumon-config-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function yamlFile(name: string, text: string): string {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect(exitCodeFor(e)).toBe(2);
    return (e as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("the file", () => {
  test("a missing file given explicitly says which path and what to do", () => {
    const file = join(tmp, "nope.yaml");
    expect(problemsOf(() => loadConfig({ file, env: {} }))).toEqual([
      `${file}: no such file: check the path given with --config (or SECUMON_CONFIG), or leave it out to run with defaults`,
    ]);
  });

  test("a directory is not a config file", () => {
    expect(problemsOf(() => loadConfig({ file: tmp, env: {} }))).toEqual([
      `${tmp}: is a directory: name the YAML file inside it`,
    ]);
  });

  test("an alias to an anchor that does not exist is reported, not thrown raw", () => {
    const file = yamlFile("alias.yaml", "api:\n  host: *nowhere\n");
    const [problem] = problemsOf(() => loadConfig({ file, env: {} }));
    expect(problem).toStartWith(`${file}:`);
    expect(problem).toContain("nowhere");
  });

  test("YAML problems and environment problems come out together", () => {
    const file = yamlFile("broken.yaml", "api:\n  port: [1\n");
    const problems = problemsOf(() => loadConfig({ file, env: { SECUMON_NOPE: "1" } }));
    expect(problems).toHaveLength(2);
    expect(problems[0]).toStartWith(`${file}:3:1: `);
    expect(problems[1]).toStartWith("SECUMON_NOPE: unknown setting");
  });

  test("keys come out in the schema's order, whatever the file's order", () => {
    const file = yamlFile("order.yaml", "nats:\n  port: 0\napi:\n  port: 1\n  host: 0.0.0.0\n");
    const c = loadConfig({ file, env: {} });
    expect(Object.keys(c).slice(0, 5)).toEqual(["data_dir", "roles", "logging", "api", "gateway"]);
    expect(Object.keys(c.api).slice(0, 2)).toEqual(["host", "port"]);
  });

  test("an empty file means defaults, and anchors work", () => {
    expect(loadConfig({ file: yamlFile("empty.yaml", ""), env: {} }).api.port).toBe(8080);
    const anchors = yamlFile("anchors.yaml", "api:\n  host: &h 0.0.0.0\ngateway:\n  host: *h\n");
    expect(loadConfig({ file: anchors, env: {} }).gateway.host).toBe("0.0.0.0");
  });
});

describe("environment overrides", () => {
  test("names: SECUMON_ and the key path, upper-cased, levels joined by __", () => {
    expect(envName(["api", "port"])).toBe("SECUMON_API__PORT");
    expect(envName(["api", "auth", "jwt_secret"])).toBe("SECUMON_API__AUTH__JWT_SECRET");
    expect(envName(["data_dir"])).toBe("SECUMON_DATA_DIR");
  });

  test("values are coerced to the field's type and win over the file; non-config SECUMON_ names are left alone", () => {
    const file = yamlFile(
      "env.yaml",
      "api:\n  port: 8081\n  tls:\n    enabled: true\n    cert_file: /c\n    key_file: /k\n",
    );
    const c = loadConfig({
      file,
      env: {
        SECUMON_API__PORT: "9090",
        SECUMON_API__TLS__ENABLED: "no",
        SECUMON_ROLES: " api , alerter ",
        SECUMON_API__CORS__ALLOWED_ORIGINS: "",
        SECUMON_DATABASE__URL: "env:DATABASE_URL",
        SECUMON_DATA_DIR: "/srv/secumon",
        SECUMON_GATEWAY__RATE_LIMITING__ENABLED: "0",
        SECUMON_CONFIG: "/etc/secumon/collector.yaml",
        SECUMON_NATS_SERVER_BIN: "/opt/nats-server",
        SECUMON_WIREGUARD_GO_BIN: "/opt/wireguard-go",
        SECUMON_TEST_DATABASE_URL: "postgres://localhost/test",
        PATH: "/usr/bin",
      },
    });
    expect(c.api.port).toBe(9090);
    expect(c.api.tls.enabled).toBe(false);
    expect(c.api.tls.cert_file).toBe("/c");
    expect(c.roles).toEqual(["api", "alerter"]);
    expect(c.api.cors.allowed_origins).toEqual([]);
    expect(c.database.url).toBe("env:DATABASE_URL");
    expect(c.data_dir).toBe("/srv/secumon");
    expect(c.gateway.rate_limiting.enabled).toBe(false);
  });

  test("SECUMON_LOG_LEVEL is a short form of SECUMON_LOGGING__LEVEL, which wins when both are set", () => {
    expect(loadConfig({ env: { SECUMON_LOG_LEVEL: "warn" } }).logging.level).toBe("warn");
    const both = { SECUMON_LOGGING__LEVEL: "debug", SECUMON_LOG_LEVEL: "warn" };
    expect(loadConfig({ env: both }).logging.level).toBe("debug");
    expect(problemsOf(() => loadConfig({ env: { SECUMON_LOG_LEVEL: "loud" } }))).toEqual([
      '/logging/level: expected one of trace, debug, info, warn, error, got "loud" (from SECUMON_LOG_LEVEL)',
    ]);
  });

  test("process.env is the default environment", () => {
    const saved = process.env.SECUMON_API__HOST;
    process.env.SECUMON_API__HOST = "0.0.0.0";
    try {
      expect(loadConfig().api.host).toBe("0.0.0.0");
    } finally {
      if (saved === undefined) delete process.env.SECUMON_API__HOST;
      else process.env.SECUMON_API__HOST = saved;
    }
  });
});

describe("overrides (command-line flags)", () => {
  test("win over the file and the environment", () => {
    const file = yamlFile("ov.yaml", "data_dir: /from/file\nroles: [api]\n");
    const c = loadConfig({
      file,
      env: { SECUMON_DATA_DIR: "/from/env" },
      overrides: { data_dir: "/from/flag", roles: ["gateway", "ingestion"], api: { port: 0 } },
    });
    expect(c.data_dir).toBe("/from/flag");
    expect(c.roles).toEqual(["gateway", "ingestion"]);
    expect(c.api.port).toBe(0);
  });

  test("undefined and null in overrides leave the value alone", () => {
    const c = loadConfig({ env: { SECUMON_DATA_DIR: "/from/env" }, overrides: { data_dir: undefined } });
    expect(c.data_dir).toBe("/from/env");
  });

  test("a bad override is named as coming from the command line", () => {
    expect(problemsOf(() => loadConfig({ env: {}, overrides: { roles: [] } }))).toEqual([
      "/roles: must list at least one role (from command line)",
    ]);
  });
});

describe("cross-field checks", () => {
  test("port 0 (any free port) never clashes", () => {
    const c = loadConfig({
      env: {},
      overrides: { api: { port: 0 }, gateway: { grpc_port: 0 }, nats: { port: 0 } },
    });
    expect([c.api.port, c.gateway.grpc_port, c.nats.port]).toEqual([0, 0, 0]);
  });

  test("listeners on different addresses may share a port; a wildcard address clashes with all", () => {
    const apart = { api: { host: "127.0.0.1", port: 9000 }, gateway: { host: "10.0.0.5", grpc_port: 9000 } };
    expect(loadConfig({ env: {}, overrides: apart }).gateway.grpc_port).toBe(9000);
    const wildcard = { api: { host: "0.0.0.0", port: 9000 }, gateway: { grpc_port: 9000 } };
    expect(problemsOf(() => loadConfig({ env: {}, overrides: wildcard }))).toEqual([
      "/gateway/grpc_port: port 9000 is also used by /api/port; give each listener its own port (from command line)",
    ]);
  });

  test("4222 and the embedded-port checks apply only to the embedded servers", () => {
    const external = {
      nats: { url: "nats://nats:4222", port: 4222 },
      database: { url: "postgres://db/secumon" },
    };
    expect(loadConfig({ env: {}, overrides: external }).nats.port).toBe(4222);
  });

  test("cross-field problems are reported alongside schema problems", () => {
    const problems = problemsOf(() =>
      loadConfig({ env: {}, overrides: { api: { port: -5 }, nats: { port: 4222 } } }),
    );
    expect(problems).toHaveLength(2);
    expect(problems[0]).toStartWith("/api/port: must be a port number");
    expect(problems[1]).toStartWith("/nats/port: 4222 is the system NATS");
  });
});
