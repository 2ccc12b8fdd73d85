/**
 * What makes a telemetry row storable. A row that fails is dropped and counted by reason
 * (secumon_ingest_rows_rejected_total{table,reason}); the rest of its batch is stored. Reasons:
 *   time_future       sample time beyond now + ingestion.max_future_skew (agent clock wrong)
 *   time_past         older than the table's retention (it would be deleted at once; also time 0 = unset)
 *   not_finite        NaN or ±Infinity in a measured value (PostgreSQL would store NaN; every average breaks)
 *   out_of_range      a percentage outside 0..100, a negative load, latency or loss, a port beyond 65535
 *   negative_counter  a 64-bit counter >= 2^63: a negative int64 sent as uint64 (does not fit bigint either)
 *   missing_field     a required identifier is empty (disk device, interface, test type, OID)
 *   bad_target        target_id is not a UUID
 *   unknown_target    target_id is not a target of the probe's tenant
 *   bad_json          scan result_json is not a JSON object
 * A whole batch whose source (agent or probe) is not known in its tenant is dead-lettered instead
 * (src/ingestion/dead-letter.ts), since none of its rows can be attributed.
 */

export type RejectReason =
  | "time_future"
  | "time_past"
  | "not_finite"
  | "out_of_range"
  | "negative_counter"
  | "missing_field"
  | "bad_target"
  | "unknown_target"
  | "bad_json";

/** Thrown inside a row converter to reject the row. */
export class RowRejected extends Error {
  constructor(readonly reason: RejectReason) {
    super(reason);
  }
}

export interface TimeWindow {
  /** Oldest storable sample time (ms). */
  minMs: number;
  /** Newest storable sample time (ms). */
  maxMs: number;
  /** When set, collects the UTC days (ms since epoch / 86400000) of the accepted samples. */
  days?: Set<number>;
}

const TWO_63 = 2 ** 63;

export function checkTime(ms: number | string, w: TimeWindow): number {
  const t = typeof ms === "number" ? ms : Number(ms);
  if (!Number.isFinite(t) || t < w.minMs) throw new RowRejected("time_past");
  if (t > w.maxMs) throw new RowRejected("time_future");
  w.days?.add(Math.floor(t / 86_400_000));
  return t;
}

/** An optional double: undefined stays undefined (NULL); NaN/Infinity rejected. */
export function finite(v: number | undefined): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Number.isFinite(v)) throw new RowRejected("not_finite");
  return v;
}

export function percent(v: number | undefined): number | undefined {
  const x = finite(v);
  if (x !== undefined && (x < 0 || x > 100)) throw new RowRejected("out_of_range");
  return x;
}

export function nonNegative(v: number | undefined): number | undefined {
  const x = finite(v);
  if (x !== undefined && x < 0) throw new RowRejected("out_of_range");
  return x;
}

/** An optional uint64 decoded as a number (or decimal string): must fit PostgreSQL's signed bigint. */
export function counter(v: number | string | undefined): number | undefined {
  if (v === undefined || v === null) return undefined;
  const x = typeof v === "number" ? v : Number(v);
  if (!Number.isFinite(x)) throw new RowRejected("not_finite");
  if (x < 0 || x >= TWO_63) throw new RowRejected("negative_counter");
  return x;
}

export function required(s: string | undefined): string {
  if (!s || s.trim() === "") throw new RowRejected("missing_field");
  return s;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string): boolean => UUID.test(s);

/** Counts rejected rows by reason while converting. */
export class RejectTally {
  readonly counts = new Map<string, number>();
  add(table: string, reason: RejectReason, n = 1): void {
    const k = `${table}\u0000${reason}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + n);
  }
  merge(other: RejectTally): void {
    for (const [k, n] of other.counts) this.counts.set(k, (this.counts.get(k) ?? 0) + n);
  }
  *entries(): Generator<{ table: string; reason: RejectReason; count: number }> {
    for (const [k, count] of this.counts) {
      const [table, reason] = k.split("\u0000") as [string, RejectReason];
      yield { table, reason, count };
    }
  }
  total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }
}
