import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatValue, METRICS_CONTENT_TYPE, Registry, registerProcessMetrics } from "./metrics.ts";

describe("counter", () => {
  test("label-less renders 0 from registration, then increments", () => {
    const r = new Registry();
    const c = r.counter({ name: "jobs_total", help: "Jobs done." });
    expect(r.render()).toBe("# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 0\n");
    c.inc();
    c.inc(2.5);
    expect(c.get()).toBe(3.5);
    expect(r.render()).toBe("# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 3.5\n");
  });

  test("labelled series sorted by label values, labels in declared order", () => {
    const r = new Registry();
    const c = r.counter({ name: "http_requests_total", help: "Requests.", labelNames: ["route", "code"] });
    c.inc({ route: "/b", code: 200 });
    c.inc({ code: "500", route: "/a" }, 2);
    c.inc({ route: "/a", code: "200" });
    expect(r.render()).toBe(
      [
        "# HELP http_requests_total Requests.",
        "# TYPE http_requests_total counter",
        'http_requests_total{route="/a",code="200"} 1',
        'http_requests_total{route="/a",code="500"} 2',
        'http_requests_total{route="/b",code="200"} 1',
        "",
      ].join("\n"),
    );
    c.remove({ route: "/a", code: "500" });
    expect(r.render()).not.toContain('code="500"');
  });

  test("negative or NaN increments throw", () => {
    const c = new Registry().counter({ name: "x_total", help: "x" });
    expect(() => c.inc(-1)).toThrow(/>= 0/);
    expect(() => c.inc(Number.NaN)).toThrow(/>= 0/);
  });
});

describe("gauge", () => {
  test("set/inc/dec, special values", () => {
    const r = new Registry();
    const g = r.gauge({ name: "temperature_celsius", help: "Temp.", labelNames: ["room"] });
    g.set({ room: "a" }, 20);
    g.inc({ room: "a" });
    g.dec({ room: "a" }, 0.5);
    g.set({ room: "b" }, Number.NaN);
    g.set({ room: "c" }, Number.POSITIVE_INFINITY);
    g.set({ room: "d" }, Number.NEGATIVE_INFINITY);
    g.set({ room: "e" }, -1e-7);
    expect(g.get({ room: "a" })).toBe(20.5);
    expect(r.render()).toBe(
      [
        "# HELP temperature_celsius Temp.",
        "# TYPE temperature_celsius gauge",
        'temperature_celsius{room="a"} 20.5',
        'temperature_celsius{room="b"} NaN',
        'temperature_celsius{room="c"} +Inf',
        'temperature_celsius{room="d"} -Inf',
        'temperature_celsius{room="e"} -1e-7',
        "",
      ].join("\n"),
    );
  });

  test("label-less set/inc/dec", () => {
    const r = new Registry();
    const g = r.gauge({ name: "queue_depth", help: "Depth." });
    g.set(5);
    g.inc();
    g.dec(3);
    expect(r.render()).toBe("# HELP queue_depth Depth.\n# TYPE queue_depth gauge\nqueue_depth 3\n");
    g.reset();
    expect(g.get()).toBe(0);
  });
});

describe("histogram", () => {
  test("cumulative buckets, +Inf, sum and count", () => {
    const r = new Registry();
    const h = r.histogram({ name: "rpc_duration_seconds", help: "RPC latency.", buckets: [0.1, 1, 5] });
    for (const v of [0.05, 0.1, 0.5, 2, 7]) h.observe(v);
    expect(r.render()).toBe(
      [
        "# HELP rpc_duration_seconds RPC latency.",
        "# TYPE rpc_duration_seconds histogram",
        'rpc_duration_seconds_bucket{le="0.1"} 2',
        'rpc_duration_seconds_bucket{le="1"} 3',
        'rpc_duration_seconds_bucket{le="5"} 4',
        'rpc_duration_seconds_bucket{le="+Inf"} 5',
        "rpc_duration_seconds_sum 9.65",
        "rpc_duration_seconds_count 5",
        "",
      ].join("\n"),
    );
  });

  test("labelled, le last; empty label-less histogram renders zeros", () => {
    const r = new Registry();
    const h = r.histogram({
      name: "size_bytes",
      help: "Sizes.",
      labelNames: ["kind"],
      buckets: [10, Infinity],
    });
    h.observe({ kind: "x" }, 3);
    r.histogram({ name: "empty_seconds", help: "Nothing.", buckets: [1] });
    expect(r.render()).toBe(
      [
        "# HELP empty_seconds Nothing.",
        "# TYPE empty_seconds histogram",
        'empty_seconds_bucket{le="1"} 0',
        'empty_seconds_bucket{le="+Inf"} 0',
        "empty_seconds_sum 0",
        "empty_seconds_count 0",
        "# HELP size_bytes Sizes.",
        "# TYPE size_bytes histogram",
        'size_bytes_bucket{kind="x",le="10"} 1',
        'size_bytes_bucket{kind="x",le="+Inf"} 1',
        'size_bytes_sum{kind="x"} 3',
        'size_bytes_count{kind="x"} 1',
        "",
      ].join("\n"),
    );
  });

  test("default buckets", () => {
    const r = new Registry();
    r.histogram({ name: "d_seconds", help: "d" }).observe(0.3);
    const out = r.render();
    expect(out).toContain('d_seconds_bucket{le="0.005"} 0\n');
    expect(out).toContain('d_seconds_bucket{le="0.25"} 0\n');
    expect(out).toContain('d_seconds_bucket{le="0.5"} 1\n');
    expect(out).toContain('d_seconds_bucket{le="10"} 1\n');
    expect(out).toContain('d_seconds_bucket{le="+Inf"} 1\n');
  });

  test("bad buckets and reserved le label throw", () => {
    const r = new Registry();
    expect(() => r.histogram({ name: "a_seconds", help: "a", buckets: [1, 1] })).toThrow(
      /strictly increasing/,
    );
    expect(() => r.histogram({ name: "b_seconds", help: "b", buckets: [2, 1] })).toThrow(
      /strictly increasing/,
    );
    expect(() => r.histogram({ name: "c_seconds", help: "c", buckets: [Number.NaN] })).toThrow(/finite/);
    expect(() => r.histogram({ name: "d_seconds", help: "d", labelNames: ["le"] })).toThrow(/reserved/);
  });
});

describe("rendering", () => {
  test("escapes label values (backslash, quote, newline) and help (backslash, newline)", () => {
    const r = new Registry();
    r.gauge({ name: "esc", help: 'Line1\nback\\slash "quoted"', labelNames: ["v"] }).set(
      { v: 'a\\b"c\nd' },
      1,
    );
    expect(r.render()).toBe(
      '# HELP esc Line1\\nback\\\\slash "quoted"\n# TYPE esc gauge\nesc{v="a\\\\b\\"c\\nd"} 1\n',
    );
  });

  test("families sorted by name regardless of registration order; empty registry renders nothing", () => {
    const r = new Registry();
    expect(r.render()).toBe("");
    r.gauge({ name: "zeta", help: "z" });
    r.counter({ name: "alpha_total", help: "a" });
    r.gauge({ name: "mid", help: "m" });
    const types = r.render().match(/^# TYPE \S+/gm);
    expect(types).toEqual(["# TYPE alpha_total", "# TYPE mid", "# TYPE zeta"]);
  });

  test("formatValue", () => {
    expect(formatValue(Number.NaN)).toBe("NaN");
    expect(formatValue(Number.POSITIVE_INFINITY)).toBe("+Inf");
    expect(formatValue(Number.NEGATIVE_INFINITY)).toBe("-Inf");
    expect(formatValue(-0)).toBe("0");
    expect(formatValue(1e21)).toBe("1e+21");
    expect(formatValue(0.1)).toBe("0.1");
    expect(METRICS_CONTENT_TYPE).toBe("text/plain; version=0.0.4; charset=utf-8");
  });

  test("collect callbacks run before each render; errors are reported, not fatal", () => {
    const errors: unknown[] = [];
    const r = new Registry({ onCollectError: (e) => errors.push(e) });
    const g = r.gauge({ name: "child_up", help: "Child up.", labelNames: ["child"] });
    let n = 0;
    r.collect(() => {
      n++;
      g.reset();
      g.set({ child: `c${n}` }, 1);
    });
    r.collect(() => {
      throw new Error("boom");
    });
    expect(r.render()).toContain('child_up{child="c1"} 1\n');
    const second = r.render();
    expect(second).toContain('child_up{child="c2"} 1\n');
    expect(second).not.toContain("c1");
    expect(errors).toHaveLength(2);
  });
});

describe("registration errors", () => {
  test("invalid metric names", () => {
    const r = new Registry();
    expect(() => r.gauge({ name: "1abc", help: "x" })).toThrow(/invalid metric name/);
    expect(() => r.gauge({ name: "a-b", help: "x" })).toThrow(/invalid metric name/);
    expect(() => r.gauge({ name: "", help: "x" })).toThrow(/invalid metric name/);
    expect(() => r.counter({ name: "bad name_total", help: "x" })).toThrow(/invalid metric name/);
    expect(() => r.gauge({ name: "ns:sub_metric", help: "x" })).not.toThrow();
  });

  test("counter must end with _total; others must not", () => {
    const r = new Registry();
    expect(() => r.counter({ name: "requests", help: "x" })).toThrow(/_total/);
    expect(() => r.gauge({ name: "requests_total", help: "x" })).toThrow(/only counters/);
    expect(() => r.histogram({ name: "latency_total", help: "x" })).toThrow(/only counters/);
  });

  test("duplicate registration throws, across types too", () => {
    const r = new Registry();
    r.counter({ name: "dup_total", help: "x" });
    expect(() => r.counter({ name: "dup_total", help: "x" })).toThrow(/already registered/);
    r.gauge({ name: "dup", help: "x" });
    expect(() => r.histogram({ name: "dup", help: "x" })).toThrow(/already registered/);
  });

  test("invalid or duplicate label names at registration", () => {
    const r = new Registry();
    expect(() => r.gauge({ name: "a", help: "x", labelNames: ["1x"] })).toThrow(/invalid label name/);
    expect(() => r.gauge({ name: "b", help: "x", labelNames: ["__reserved"] })).toThrow(/invalid label name/);
    expect(() => r.gauge({ name: "c", help: "x", labelNames: ["a:b"] })).toThrow(/invalid label name/);
    expect(() => r.gauge({ name: "d", help: "x", labelNames: ["k", "k"] })).toThrow(/duplicate label name/);
  });

  test("wrong label names at use throw", () => {
    const r = new Registry();
    const c = r.counter({ name: "l_total", help: "x", labelNames: ["a"] });
    // @ts-expect-error unknown label
    expect(() => c.inc({ a: "1", b: "2" })).toThrow(/unknown label "b"/);
    // @ts-expect-error missing label
    expect(() => c.inc({})).toThrow(/missing label "a"/);
    expect(() => c.inc()).toThrow(/missing label "a"/);
    const plain = r.gauge({ name: "p", help: "x" });
    // a label-less gauge takes no labels (the type allows {} here, the runtime check refuses it)
    expect(() => plain.set({ a: "1" } as never, 1)).toThrow(/unknown label "a"/);
    expect(r.render()).toBe("# HELP l_total x\n# TYPE l_total counter\n# HELP p x\n# TYPE p gauge\np 0\n");
  });
});

describe("process metrics", () => {
  test("registers standard process_* and build info", () => {
    const r = new Registry();
    registerProcessMetrics(r, "1.2.3");
    const out = r.render();
    for (const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "process_start_time_seconds",
    ]) {
      expect(out).toContain(`# TYPE ${name} `);
    }
    expect(out).toContain(`secumon_build_info{version="1.2.3",bun_version="${Bun.version}"} 1\n`);
    const value = (name: string) => Number(out.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1]);
    expect(value("process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(value("process_cpu_seconds_total")).toBeGreaterThan(0);
    const start = value("process_start_time_seconds");
    expect(start).toBeLessThanOrEqual(Date.now() / 1000);
    expect(start).toBeGreaterThan(Date.now() / 1000 - 3600);
    if (process.platform === "linux") {
      expect(value("process_open_fds")).toBeGreaterThan(2);
      expect(value("process_virtual_memory_bytes")).toBeGreaterThan(value("process_resident_memory_bytes"));
    }
  });
});

describe("promtool", () => {
  test("`promtool check metrics` accepts a registry with every type, without lint warnings", () => {
    const promtool = "/usr/bin/promtool";
    if (!existsSync(promtool))
      throw new Error(`${promtool} missing: run scripts/setup.sh (Debian package prometheus)`);
    const r = new Registry();
    registerProcessMetrics(r, "0.1.0");
    r.counter({
      name: "secumon_ingested_events_total",
      help: "Events ingested.",
      labelNames: ["source"],
    }).inc({ source: 'odd "source"\\\nname' }, 3);
    r.gauge({ name: "secumon_queue_depth", help: "Queue depth." }).set(Number.NaN);
    r.gauge({ name: "secumon_child_up", help: "Child up.", labelNames: ["child"] }).set({ child: "wg" }, 1);
    const h = r.histogram({
      name: "secumon_request_duration_seconds",
      help: "Request duration.",
      labelNames: ["route"],
    });
    h.observe({ route: "/a" }, 0.02);
    h.observe({ route: "/a" }, Number.POSITIVE_INFINITY);
    r.histogram({ name: "secumon_batch_size_bytes", help: "Batch size.", buckets: [100, 1000] });

    const dir = mkdtempSync(join(tmpdir(), "secumon-metrics-"));
    try {
      const file = join(dir, "metrics.prom");
      writeFileSync(file, r.render());
      const res = Bun.spawnSync([promtool, "check", "metrics"], { stdin: Bun.file(file) });
      const output = `${res.stdout.toString()}${res.stderr.toString()}`;
      expect(output.trim()).toBe("");
      expect(res.exitCode).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
