/**
 * A small, dependency-free Prometheus metrics registry (text exposition format 0.0.4).
 * prom-client relies on Node perf_hooks features Bun lacks, so we keep our own: counters, gauges, histograms,
 * pre-scrape collect callbacks (for values computed on demand), and the standard process_* metrics.
 *
 * Output is deterministic: families sorted by name, series sorted by label values. Label-less metrics are
 * exported (as 0) from registration on, like the Go client does.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type LabelValues<L extends string> = Readonly<Record<L, string | number>>;

export interface MetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  /** Upper bounds, strictly increasing; `+Inf` is implicit. Defaults to DEFAULT_BUCKETS. */
  buckets?: readonly number[];
}

interface Series<L extends string> {
  /** Drop one labelled series (e.g. a child process that went away). */
  remove(labels: LabelValues<L>): void;
  /** Drop all series (label-less metrics go back to 0). */
  reset(): void;
}

export interface Counter<L extends string = never> extends Series<L> {
  inc(n?: number): void;
  inc(labels: LabelValues<L>, n?: number): void;
  get(labels?: LabelValues<L>): number;
}

export interface Gauge<L extends string = never> extends Series<L> {
  set(value: number): void;
  set(labels: LabelValues<L>, value: number): void;
  inc(n?: number): void;
  inc(labels: LabelValues<L>, n?: number): void;
  dec(n?: number): void;
  dec(labels: LabelValues<L>, n?: number): void;
  get(labels?: LabelValues<L>): number;
}

export interface Histogram<L extends string = never> extends Series<L> {
  observe(value: number): void;
  observe(labels: LabelValues<L>, value: number): void;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Prometheus float formatting: NaN, +Inf, -Inf, otherwise the shortest round-trip representation. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

export function escapeLabelValue(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function renderLabels(pairs: readonly (readonly [string, string])[]): string {
  if (pairs.length === 0) return "";
  return `{${pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}`;
}

function compareValues(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? "";
    const y = b[i] ?? "";
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

type Args<L extends string> = [LabelValues<L> | number | undefined, number | undefined];

abstract class Family<V> {
  private readonly series = new Map<string, { values: string[]; data: V }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge" | "histogram",
    readonly labelNames: readonly string[],
  ) {}

  protected abstract fresh(): V;
  protected abstract renderData(labels: [string, string][], data: V): string[];

  /** Splits `(labels?, n?)` / `(n?)` call forms. */
  protected args(
    a: Args<string>[0],
    b: Args<string>[1],
  ): [Record<string, string | number>, number | undefined] {
    if (typeof a === "number") return [{}, a];
    return [(a ?? {}) as Record<string, string | number>, b];
  }

  private values(labels: Record<string, string | number>): string[] {
    for (const k of Object.keys(labels)) {
      if (!this.labelNames.includes(k)) throw new Error(`metric ${this.name}: unknown label "${k}"`);
    }
    return this.labelNames.map((k) => {
      const v = labels[k];
      if (v === undefined) throw new Error(`metric ${this.name}: missing label "${k}"`);
      return String(v);
    });
  }

  protected slot(labels: Record<string, string | number>): V {
    const values = this.values(labels);
    const key = JSON.stringify(values);
    let s = this.series.get(key);
    if (!s) {
      s = { values, data: this.fresh() };
      this.series.set(key, s);
    }
    return s.data;
  }

  protected peek(labels: Record<string, string | number>): V | undefined {
    return this.series.get(JSON.stringify(this.values(labels)))?.data;
  }

  remove(labels: Record<string, string | number>): void {
    this.series.delete(JSON.stringify(this.values(labels)));
  }

  reset(): void {
    this.series.clear();
    if (this.labelNames.length === 0) this.slot({});
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    const all = [...this.series.values()].sort((a, b) => compareValues(a.values, b.values));
    for (const s of all) {
      const pairs = this.labelNames.map((k, i): [string, string] => [k, s.values[i] ?? ""]);
      lines.push(...this.renderData(pairs, s.data));
    }
    return `${lines.join("\n")}\n`;
  }
}

class CounterImpl extends Family<{ v: number }> implements Counter<string> {
  protected fresh() {
    return { v: 0 };
  }
  protected renderData(labels: [string, string][], d: { v: number }): string[] {
    return [`${this.name}${renderLabels(labels)} ${formatValue(d.v)}`];
  }
  inc(a?: Args<string>[0], b?: number): void {
    const [labels, n = 1] = this.args(a, b);
    if (!(n >= 0)) throw new Error(`counter ${this.name}: increment must be >= 0, got ${n}`);
    this.slot(labels).v += n;
  }
  get(labels?: LabelValues<string>): number {
    return this.peek(labels ?? {})?.v ?? 0;
  }
}

class GaugeImpl extends Family<{ v: number }> implements Gauge<string> {
  protected fresh() {
    return { v: 0 };
  }
  protected renderData(labels: [string, string][], d: { v: number }): string[] {
    return [`${this.name}${renderLabels(labels)} ${formatValue(d.v)}`];
  }
  set(a: Args<string>[0], b?: number): void {
    const [labels, v] = this.args(a, b);
    if (typeof v !== "number") throw new Error(`gauge ${this.name}: set() needs a value`);
    this.slot(labels).v = v;
  }
  inc(a?: Args<string>[0], b?: number): void {
    const [labels, n = 1] = this.args(a, b);
    this.slot(labels).v += n;
  }
  dec(a?: Args<string>[0], b?: number): void {
    const [labels, n = 1] = this.args(a, b);
    this.slot(labels).v -= n;
  }
  get(labels?: LabelValues<string>): number {
    return this.peek(labels ?? {})?.v ?? 0;
  }
}

interface HistogramData {
  counts: number[]; // per bucket (non-cumulative), last entry is the +Inf bucket
  sum: number;
  count: number;
}

class HistogramImpl extends Family<HistogramData> implements Histogram<string> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[],
  ) {
    super(name, help, "histogram", labelNames);
  }
  protected fresh(): HistogramData {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }
  protected renderData(labels: [string, string][], d: HistogramData): string[] {
    const out: string[] = [];
    let cumulative = 0;
    this.buckets.forEach((le, i) => {
      cumulative += d.counts[i] ?? 0;
      out.push(`${this.name}_bucket${renderLabels([...labels, ["le", formatValue(le)]])} ${cumulative}`);
    });
    out.push(`${this.name}_bucket${renderLabels([...labels, ["le", "+Inf"]])} ${d.count}`);
    out.push(`${this.name}_sum${renderLabels(labels)} ${formatValue(d.sum)}`);
    out.push(`${this.name}_count${renderLabels(labels)} ${d.count}`);
    return out;
  }
  observe(a: Args<string>[0], b?: number): void {
    const [labels, v] = this.args(a, b);
    if (typeof v !== "number") throw new Error(`histogram ${this.name}: observe() needs a value`);
    const d = this.slot(labels);
    const i = this.buckets.findIndex((le) => v <= le);
    d.counts[i === -1 ? this.buckets.length : i]! += 1;
    d.sum += v;
    d.count += 1;
  }
}

export class Registry {
  private readonly families = new Map<string, Family<unknown>>();
  private readonly collectors: (() => void)[] = [];

  /** `onCollectError` receives exceptions from collect callbacks; the scrape still renders. */
  constructor(private readonly opts: { onCollectError?: (err: unknown) => void } = {}) {}

  counter<L extends string = never>(o: MetricOptions<L>): Counter<L> {
    if (!o.name.endsWith("_total")) throw new Error(`counter ${o.name}: name must end with "_total"`);
    return this.add(new CounterImpl(...this.check(o, "counter"), "counter", o.labelNames ?? []));
  }

  gauge<L extends string = never>(o: MetricOptions<L>): Gauge<L> {
    return this.add(new GaugeImpl(...this.check(o, "gauge"), "gauge", o.labelNames ?? []));
  }

  histogram<L extends string = never>(o: HistogramOptions<L>): Histogram<L> {
    const [name, help] = this.check(o, "histogram");
    if (o.labelNames?.includes("le" as L)) throw new Error(`histogram ${name}: label "le" is reserved`);
    const buckets = [...(o.buckets ?? DEFAULT_BUCKETS)];
    if (buckets.at(-1) === Number.POSITIVE_INFINITY) buckets.pop();
    buckets.forEach((b, i) => {
      if (!Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!)) {
        throw new Error(`histogram ${name}: buckets must be finite and strictly increasing`);
      }
    });
    return this.add(new HistogramImpl(name, help, o.labelNames ?? [], buckets));
  }

  /** Registers a callback run (synchronously) before each render, to refresh on-demand values. */
  collect(fn: () => void): void {
    this.collectors.push(fn);
  }

  render(): string {
    for (const fn of this.collectors) {
      try {
        fn();
      } catch (err) {
        this.opts.onCollectError?.(err);
      }
    }
    const names = [...this.families.keys()].sort();
    return names.map((n) => this.families.get(n)!.render()).join("");
  }

  private check(o: MetricOptions<string>, type: string): [string, string] {
    if (!METRIC_NAME.test(o.name)) throw new Error(`${type} ${o.name}: invalid metric name`);
    if (type !== "counter" && o.name.endsWith("_total")) {
      throw new Error(`${type} ${o.name}: only counters may end with "_total"`);
    }
    if (this.families.has(o.name)) throw new Error(`metric ${o.name}: already registered`);
    const seen = new Set<string>();
    for (const l of o.labelNames ?? []) {
      if (!LABEL_NAME.test(l) || l.startsWith("__"))
        throw new Error(`metric ${o.name}: invalid label name "${l}"`);
      if (seen.has(l)) throw new Error(`metric ${o.name}: duplicate label name "${l}"`);
      seen.add(l);
    }
    return [o.name, o.help];
  }

  private add<M>(f: Family<unknown> & M): M {
    f.reset(); // creates the zero series of label-less metrics (after subclass fields are initialised)
    this.families.set(f.name, f);
    return f;
  }
}

function readProcStatusBytes(field: string): number | undefined {
  const m = readFileSync("/proc/self/status", "utf8").match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  return m?.[1] === undefined ? undefined : Number(m[1]) * 1024;
}

/** Standard process_* metrics plus `secumon_build_info{version,bun_version} 1`. /proc-based ones only on Linux. */
export function registerProcessMetrics(registry: Registry, version: string): void {
  const cpu = registry.counter({
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds.",
  });
  const rss = registry.gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
  });
  const start = registry.gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since unix epoch in seconds.",
  });
  start.set(Date.now() / 1000 - process.uptime());
  registry
    .gauge({
      name: "secumon_build_info",
      help: "SecuMon Collector build information.",
      labelNames: ["version", "bun_version"],
    })
    .set({ version, bun_version: Bun.version }, 1);

  let cpuSeen = 0;
  registry.collect(() => {
    const u = process.cpuUsage();
    const total = (u.user + u.system) / 1e6;
    if (total > cpuSeen) cpu.inc(total - cpuSeen);
    cpuSeen = Math.max(cpuSeen, total);
    rss.set(process.memoryUsage().rss);
  });

  if (!existsSync("/proc/self/fd")) return;
  const fds = registry.gauge({ name: "process_open_fds", help: "Number of open file descriptors." });
  const vsize = registry.gauge({
    name: "process_virtual_memory_bytes",
    help: "Virtual memory size in bytes.",
  });
  registry.collect(() => {
    fds.set(readdirSync("/proc/self/fd").length);
    const vm = readProcStatusBytes("VmSize");
    if (vm !== undefined) vsize.set(vm);
  });
}
