/**
 * In-memory limits of one gateway process: token buckets (per-source batch rate, per-IP enrollment failures)
 * and counters of open calls (global and per source). Time comes from an injected clock.
 */

export type Clock = () => number;

/** A token bucket per key; idle full buckets are forgotten so the map stays small. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: Clock = Date.now,
  ) {}

  /** Takes one token; returns 0 when allowed, else the milliseconds until a token is available. */
  take(key: string, n = 1): number {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, at: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.ratePerSecond);
    b.at = t;
    if (b.tokens >= n) {
      b.tokens -= n;
      return 0;
    }
    return Math.ceil(((n - b.tokens) / this.ratePerSecond) * 1000);
  }

  /** Would `take` succeed? (does not consume) */
  peek(key: string): number {
    const b = this.buckets.get(key);
    if (!b) return 0;
    const tokens = Math.min(this.burst, b.tokens + ((this.now() - b.at) / 1000) * this.ratePerSecond);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) / this.ratePerSecond) * 1000);
  }

  /** Drops buckets that have refilled (call periodically). */
  sweep(): void {
    const t = this.now();
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((t - b.at) / 1000) * this.ratePerSecond >= this.burst) this.buckets.delete(k);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** Counts open calls globally and per key, refusing beyond the limits. */
export class CallCounter {
  private total = 0;
  private readonly perKey = new Map<string, number>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerKey: number,
  ) {}

  /** "total" / "per_key" when refused, else null (and the call is counted: release it later). */
  acquire(key: string | null): "total" | "per_key" | null {
    if (this.total >= this.maxTotal) return "total";
    if (key !== null) {
      const n = this.perKey.get(key) ?? 0;
      if (n >= this.maxPerKey) return "per_key";
      this.perKey.set(key, n + 1);
    }
    this.total++;
    return null;
  }

  release(key: string | null): void {
    this.total = Math.max(0, this.total - 1);
    if (key !== null) {
      const n = (this.perKey.get(key) ?? 1) - 1;
      if (n <= 0) this.perKey.delete(key);
      else this.perKey.set(key, n);
    }
  }

  get open(): number {
    return this.total;
  }
}
