import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseFixture, runFixture } from "../../src/alerter/engine/fixture.ts";

const dir = join(import.meta.dir, "fixtures");

describe("rule engine fixtures", () => {
  for (const f of readdirSync(dir).filter((x) => x.endsWith(".txt"))) {
    test(f, async () => {
      expect(await runFixture(readFileSync(join(dir, f), "utf8"))).toEqual([]);
    });
  }

  test("a fixture whose expectation is wrong reports the mismatch (the runner can fail)", async () => {
    const problems = await runFixture(`
load 1m
  system.cpu_usage{agent_id="a1"} 95x3
rule r threshold
  {"conditions": [{"metric": "system.cpu_usage", "aggregation": "last", "window": "1m", "threshold": 90}]}
eval at 1m
  pending r{agent_id="a1"}
`);
    expect(problems.join("\n")).toContain("expected pending r");
    expect(problems.join("\n")).toContain("unexpected firing r");
  });

  test("value expansion: 1+2x3, 5x2, gaps", () => {
    const fx = parseFixture(`
load 1m
  system.cpu_usage{agent_id="a"} 1+2x3 _ 5x2 _x1 -1-1x1
`);
    expect(fx.port.series[0]?.samples.map((s) => s[1])).toEqual([1, 3, 5, 7, 5, 5, 5, -1, -2]);
  });

  test("errors name the line", () => {
    expect(() => parseFixture("bogus 1")).toThrow(/line 1: unknown directive/);
    expect(() => parseFixture('rule r threshold\n  {"conditions": []}')).toThrow(/line 2: .*non-empty list/);
    expect(() => parseFixture('load 1m\n  system.cpu_usage{a="b"} zz')).toThrow(/line 2: bad value/);
  });
});
