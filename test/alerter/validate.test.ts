import { describe, expect, test } from "bun:test";
import { validateChannelConfig } from "../../src/alerter/notify/channels.ts";
import { render } from "../../src/alerter/notify/render.ts";
import { matchesAll, parseMatchers } from "../../src/alerter/rules/matchers.ts";
import { parseMetric } from "../../src/alerter/rules/metrics.ts";
import { validateRule } from "../../src/alerter/rules/validate.ts";

const ok = {
  name: "High CPU",
  severity: "critical",
  type: "threshold",
  conditions: {
    conditions: [
      { metric: "system.cpu_usage", aggregation: "avg", window: "5m", operator: "gt", threshold: 90 },
    ],
  },
};
const errorsOf = (x: unknown) => {
  const r = validateRule(x);
  return r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`);
};

describe("validateRule", () => {
  test("a valid rule is normalised and compiled", () => {
    const r = validateRule({ ...ok, for_duration: "90s", keep_firing_for: "1m30s", repeat_interval: "1h" });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.rule).toMatchObject({
      for_duration: "1m30s",
      keep_firing_for: "1m30s",
      repeat_interval: "1h",
      enabled: true,
      labels: {},
    });
    expect(r.forMs).toBe(90_000);
    expect(r.compiled.conditions[0]).toMatchObject({
      type: "threshold",
      windowMs: 300_000,
      threshold: 90,
      metric: { source: "system", field: "cpu_usage" },
    });
    expect(r.compiled.match).toBe("all");
  });

  test.each([
    [{ ...ok, name: " " }, "/name: name is required"],
    [{ ...ok, severity: "major" }, '/severity: severity must be one of "info", "warning", "critical"'],
    [{ ...ok, type: "trend" }, "/type: type must be one of"],
    [{ ...ok, bogus: 1 }, '/bogus: unknown field "bogus"'],
    [{ ...ok, for_duration: "5 minutes" }, '/for_duration: for_duration must be a duration such as "30s"'],
    [{ ...ok, repeat_interval: "0s" }, "/repeat_interval: repeat_interval must be longer than 0"],
    [{ ...ok, labels: { "bad-name": "x" } }, "/labels/bad-name: label names must match"],
    [{ ...ok, conditions: [] }, "/conditions: conditions must be an object"],
    [
      { ...ok, conditions: { conditions: [] } },
      "/conditions/conditions: conditions must be a non-empty list",
    ],
    [
      { ...ok, conditions: { match: "most", conditions: ok.conditions.conditions } },
      '/conditions/match: match must be "all" or "any"',
    ],
    [
      { ...ok, conditions: { scope: { agents: ["x"] }, conditions: ok.conditions.conditions } },
      '/conditions/scope/agents/0: "x" is not a UUID',
    ],
    [
      { ...ok, conditions: { conditions: [{ metric: "cpu" }] } },
      '/conditions/conditions/0/metric: metric "cpu" must look like <source>.<field>',
    ],
    [
      { ...ok, conditions: { conditions: [{ metric: "system.cpu", threshold: 1 }] } },
      '/conditions/conditions/0/metric: unknown metric "system.cpu": system.* has cpu_usage',
    ],
    [
      { ...ok, conditions: { conditions: [{ metric: "gpu.temp", threshold: 1 }] } },
      '/conditions/conditions/0/metric: unknown metric source "gpu"',
    ],
    [
      { ...ok, conditions: { conditions: [{ metric: 'disk.usage_percent{mount="/"}', threshold: 1 }] } },
      '/conditions/conditions/0/metric: metric disk.usage_percent has no label "mount"',
    ],
    [
      { ...ok, conditions: { conditions: [{ metric: 'disk.usage_percent{device=~"("}', threshold: 1 }] } },
      "regular expression for label device does not compile",
    ],
    [
      { ...ok, conditions: { conditions: [{ metric: "system.cpu_usage" }] } },
      "/conditions/conditions/0/threshold: threshold is required for a threshold condition",
    ],
    [
      {
        ...ok,
        conditions: { conditions: [{ metric: "system.cpu_usage", threshold: 1, aggregation: "median" }] },
      },
      "/conditions/conditions/0/aggregation: aggregation must be one of",
    ],
    [
      { ...ok, conditions: { conditions: [{ metric: "system.cpu_usage", threshold: 1, operator: ">" }] } },
      "/conditions/conditions/0/operator: operator must be one of",
    ],
    [
      { ...ok, conditions: { conditions: [{ metric: "system.cpu_usage", threshold: 1, window: "0s" }] } },
      "/conditions/conditions/0/window: window must be between 1s and 7d",
    ],
    [
      { ...ok, conditions: { conditions: [{ metric: "system.cpu_usage", threshold: 1, absent_for: "5m" }] } },
      '/conditions/conditions/0/absent_for: field "absent_for" does not apply to a threshold condition',
    ],
    [
      {
        ...ok,
        type: "change",
        conditions: { conditions: [{ metric: "system.cpu_usage", threshold: 1, mode: "ratio" }] },
      },
      '/conditions/conditions/0/mode: mode must be "absolute" or "percent"',
    ],
    [
      {
        ...ok,
        type: "anomaly",
        conditions: { conditions: [{ metric: "system.cpu_usage", window: "1h", baseline: "30m" }] },
      },
      "/conditions/conditions/0/baseline: baseline must be longer than window",
    ],
    [
      {
        ...ok,
        type: "anomaly",
        conditions: { conditions: [{ metric: "system.cpu_usage", baseline: "1h", min_history: "2h" }] },
      },
      "/conditions/conditions/0/min_history: min_history must not exceed baseline",
    ],
  ])("%# rejects with a clear message", (input, message) => {
    expect(errorsOf(input).join("\n")).toContain(message);
  });

  test("every problem is reported at once", () => {
    expect(
      errorsOf({
        name: "",
        severity: "x",
        type: "threshold",
        conditions: { conditions: [{ metric: "nope" }] },
      }).length,
    ).toBeGreaterThanOrEqual(3);
  });

  test("not an object", () => {
    expect(errorsOf([])).toEqual([": a rule must be a JSON object"]);
  });

  test("absent and anomaly defaults", () => {
    const a = validateRule({
      ...ok,
      type: "absent",
      conditions: { conditions: [{ metric: "scan.success" }] },
    });
    expect(a.ok && a.compiled.conditions[0]?.absentForMs).toBe(300_000);
    const n = validateRule({
      ...ok,
      type: "anomaly",
      conditions: { conditions: [{ metric: "snmp.ifInErrors" }] },
    });
    expect(n.ok && n.compiled.conditions[0]).toMatchObject({
      threshold: 3,
      baselineMs: 86_400_000,
      minHistoryMs: 3_600_000,
    });
  });
});

describe("metrics and matchers", () => {
  test("metric references are normalised", () => {
    expect(parseMetric(' disk.usage_percent{ mountpoint = "/" , device!~"loop.*"} ').text).toBe(
      'disk.usage_percent{mountpoint="/", device!~"loop.*"}',
    );
    expect(parseMetric("snmp.ifHCInOctets").source).toBe("snmp");
  });
  test("matchers: = != =~ !~, anchored regular expressions, missing labels read as empty", () => {
    const m = parseMatchers('a="x", b!="y", c=~"sd.", d!~"tmp.*", e=""');
    expect(matchesAll(m, { a: "x", b: "z", c: "sda", d: "var" })).toBe(true);
    expect(matchesAll(m, { a: "x", b: "z", c: "sda1", d: "var" })).toBe(false);
    expect(matchesAll(m, { a: "x", b: "y", c: "sda", d: "var" })).toBe(false);
    expect(() => parseMatchers('a="x" b="y"')).toThrow(/expected , between label matchers/);
    expect(() => parseMatchers("a=x")).toThrow(/must be in double quotes/);
  });
});

describe("channel configs", () => {
  test.each([
    ["email", { to: [] }, "/config/to: to must be a non-empty list of e-mail addresses"],
    ["email", { to: ["nope"] }, '/config/to/0: "nope" is not one of e-mail addresses'],
    ["sms", { to: ["0612345678"] }, "is not one of phone numbers in E.164 form"],
    ["webhook", { url: "ftp://x" }, "/config/url: url is required: an http:// or https:// URL"],
    [
      "webhook",
      { url: "https://x.example", secret: "short" },
      "/config/secret: secret must be a string of at least 16 characters",
    ],
    [
      "webhook",
      { url: "https://x.example", timeout: "soon" },
      '/config/timeout: timeout must be a duration such as "10s"',
    ],
    ["slack", { webhook_url: "not a url" }, "/config/webhook_url: webhook_url must be an https:// URL"],
    ["slack", { channel: "#ops" }, '/config/channel: unknown field "channel" for a slack channel'],
    ["pager", {}, "/type: type must be one of email, slack, webhook, sms"],
  ])("%s %j", (type, config, message) => {
    expect(
      validateChannelConfig(type, config)
        .map((e) => `${e.path}: ${e.message}`)
        .join("\n"),
    ).toContain(message);
  });
  test("valid configs pass", () => {
    expect(
      validateChannelConfig("webhook", {
        url: "https://hooks.example.com/x",
        secret: "0123456789abcdef",
        headers: { "X-Team": "ops" },
      }),
    ).toEqual([]);
    expect(validateChannelConfig("sms", { to: ["+33612345678"] })).toEqual([]);
  });
});

describe("render", () => {
  test("resolved, grouped, with annotations and links", () => {
    const r = render(
      {
        kind: "resolved",
        status: "resolved",
        rule: { name: "Disk full", severity: "warning" },
        annotations: {
          summary: "{{labels.mountpoint}} at {{value}}%",
          description: "Threshold {{threshold}}",
        },
        alerts: [
          {
            instance_id: "i1",
            labels: { agent: "db-1", mountpoint: "/var" },
            value: 91.23456,
            threshold: 90,
          },
          { instance_id: "i2", labels: { agent: "db-2", mountpoint: "/" }, value: 95, threshold: 90 },
        ],
      },
      "https://ui.example/",
    );
    expect(r.subject).toBe("[RESOLVED:2] Disk full (warning)");
    expect(r.text).toContain("/var at 91.235%");
    expect(r.text).toContain("Threshold 90");
    expect(r.links).toEqual(["https://ui.example/alerts/i1", "https://ui.example/alerts/i2"]);
    expect(r.short).toContain("on db-1 and 1 more");
  });
});
