/**
 * Time ranges of telemetry queries: `from`/`to` as `now`, relative (`-1h`, `-30m`, `-7d`, `-2w`), an ISO 8601
 * date-time or Unix milliseconds; and the resolution that serves a range (`auto`: raw up to 6 hours, 5-minute
 * rollups up to 3 days, hourly beyond), with a bucket step that keeps a chart near 1000 points at most.
 */
import { invalid } from "../lib/http-errors.ts";

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
export const MAX_RANGE_MS = 400 * 86_400_000;
const MAX_POINTS = 1000;

export function parseTime(v: string, now: number, path: string): number {
  if (v === "now") return now;
  const rel = /^-(\d{1,6})(s|m|h|d|w)$/.exec(v);
  if (rel) return now - Number(rel[1]) * (UNIT_MS[rel[2] as string] as number);
  if (/^\d{10,16}$/.test(v)) return Number(v);
  if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+)?(Z|[+-]\d{2}:?\d{2})?$/.test(v)) {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  }
  throw invalid(
    path,
    `"${v.slice(0, 40)}" is not a time: use now, -15m, -24h, -7d, an ISO date-time or Unix milliseconds`,
  );
}

export interface Range {
  from: Date;
  to: Date;
}

export function parseRange(
  q: { from?: string; to?: string },
  now: number,
  defaultFrom = "-1h",
  where = "query",
): Range {
  const from = parseTime(q.from ?? defaultFrom, now, `${where}/from`);
  const to = parseTime(q.to ?? "now", now, `${where}/to`);
  if (!(to > from)) throw invalid(`${where}/to`, "must be later than from");
  if (to - from > MAX_RANGE_MS) throw invalid(`${where}/from`, "the range may span at most 400 days");
  return { from: new Date(from), to: new Date(to) };
}

export type Resolution = "raw" | "5m" | "1h";
export const RESOLUTIONS = ["auto", "raw", "5m", "1h"] as const;
const BASE_MS: Record<Resolution, number> = { raw: 60_000, "5m": 300_000, "1h": 3_600_000 };
const NICE = [
  60_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000,
];

export function pickResolution(r: Range, wanted: string | undefined): Resolution {
  if (wanted && wanted !== "auto") return wanted as Resolution;
  const span = r.to.getTime() - r.from.getTime();
  if (span <= 6 * 3_600_000) return "raw";
  if (span <= 3 * 86_400_000) return "5m";
  return "1h";
}

/** Bucket width: at least the resolution's, widened to a round step so the range has ≤ ~1000 points. */
export function stepFor(r: Range, res: Resolution): number {
  const span = r.to.getTime() - r.from.getTime();
  const need = Math.ceil(span / MAX_POINTS);
  const base = BASE_MS[res];
  if (need <= base) return base;
  return NICE.find((n) => n >= need && n % base === 0) ?? Math.ceil(need / base) * base;
}
