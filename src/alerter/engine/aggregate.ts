/** From window stats to one value, and comparisons. Pure. */
import type { Aggregation, Operator } from "../rules/types.ts";
import type { Stats } from "./query.ts";

/** The aggregated value, or null when it cannot be computed (no samples; rate from fewer than 2 samples). */
export function aggregate(s: Stats | undefined, agg: Aggregation): number | null {
  if (!s || s.n === 0) return null;
  switch (agg) {
    case "avg":
      return s.sum / s.n;
    case "min":
      return s.min;
    case "max":
      return s.max;
    case "last":
      return s.last;
    case "count":
      return s.n;
    case "sum":
      return s.sum;
    case "rate": {
      const dt = (s.lastT - s.firstT) / 1000;
      if (s.n < 2 || dt <= 0) return null;
      const d = s.last - s.first;
      return d < 0 ? null : d / dt; // a counter that went down was reset: no rate this window
    }
  }
}

export function compare(op: Operator, v: number, t: number): boolean {
  switch (op) {
    case "gt":
      return v > t;
    case "ge":
      return v >= t;
    case "lt":
      return v < t;
    case "le":
      return v <= t;
    case "eq":
      return v === t;
    case "ne":
      return v !== t;
  }
}

/** Sample mean and standard deviation of the stats (null below 2 samples). */
export function meanStd(s: Stats | undefined): { mean: number; std: number } | null {
  if (!s || s.n < 2) return null;
  const mean = s.sum / s.n;
  const variance = Math.max(0, (s.sumSq - s.n * mean * mean) / (s.n - 1));
  return { mean, std: Math.sqrt(variance) };
}

export const OPERATOR_TEXT: Record<Operator, string> = {
  gt: ">",
  ge: "≥",
  lt: "<",
  le: "≤",
  eq: "=",
  ne: "≠",
};
