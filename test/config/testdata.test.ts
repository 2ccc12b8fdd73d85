/**
 * testdata/config, Prometheus style: every `NAME.good.yaml` loads and keeps the values it sets; every
 * `NAME.bad.yaml` fails with exactly the message in `NAME.bad.yaml.expected`. An optional `NAME.*.yaml.env`
 * (KEY=VALUE lines) is the environment the file is loaded with. The file's directory is written `testdata/`
 * in the expected messages.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/lib/errors.ts";

const dir = join(import.meta.dir, "../../testdata/config");
const files = readdirSync(dir).sort();
const good = files.filter((f) => f.endsWith(".good.yaml"));
const bad = files.filter((f) => f.endsWith(".bad.yaml"));

function envFor(file: string): Record<string, string> {
  const path = join(dir, `${file}.env`);
  if (!files.includes(`${file}.env`)) return {};
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

/** Every value set in `want` (a parsed YAML document) is found in `got`. */
function expectSubset(got: unknown, want: unknown, at = ""): void {
  if (want === null || want === undefined) return;
  if (typeof want === "object" && !Array.isArray(want)) {
    for (const [k, v] of Object.entries(want))
      expectSubset((got as Record<string, unknown>)[k], v, `${at}/${k}`);
    return;
  }
  expect({ at, value: got }).toEqual({ at, value: want });
}

describe("testdata/config good files", () => {
  test("there are some", () => expect(good.length).toBeGreaterThanOrEqual(5));
  for (const f of good) {
    test(f, () => {
      const config = loadConfig({ file: join(dir, f), env: envFor(f) });
      expectSubset(config, Bun.YAML.parse(readFileSync(join(dir, f), "utf8")));
    });
  }
});

describe("testdata/config bad files", () => {
  test("there are at least 15, each with its expected message", () => {
    expect(bad.length).toBeGreaterThanOrEqual(15);
    const expected = files.filter((f) => f.endsWith(".expected")).map((f) => f.replace(/\.expected$/, ""));
    expect(expected.sort()).toEqual(bad);
  });
  for (const f of bad) {
    test(f, () => {
      let err: unknown;
      try {
        loadConfig({ file: join(dir, f), env: envFor(f) });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      const message = (err as Error).message.replaceAll(`${dir}/`, "testdata/");
      const path = join(dir, `${f}.expected`);
      if (process.env.UPDATE_TESTDATA === "1") Bun.write(path, `${message}\n`);
      expect(message).toBe(readFileSync(path, "utf8").trimEnd());
    });
  }
});
