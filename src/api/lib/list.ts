/**
 * Lists, the same everywhere: `?limit=50&offset=0&sort=-created_at` plus per-resource filters; the answer is
 * `{ data: [...], pagination: { limit, offset, total } }`. Sort columns come from a per-resource allow-list
 * (a name outside it is 422), values are always bound parameters, never spliced into SQL.
 */
import { t } from "elysia";
import type { Tx } from "../../storage/db.ts";
import { invalid } from "./http-errors.ts";

export const PageQuery = {
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 500, default: 50 })),
  offset: t.Optional(t.Integer({ minimum: 0, maximum: 1_000_000, default: 0 })),
  sort: t.Optional(
    t.String({ pattern: "^-?[a-z_]{1,40}$", description: "column; prefix with - for descending" }),
  ),
};

export interface Page<T> {
  data: T[];
  pagination: { limit: number; offset: number; total: number };
}

type Fragment = ReturnType<Tx["unsafe"]> | ReturnType<Tx>;

export interface ListSpec {
  /** `select ... from ...` without where/order/limit, as a fragment. */
  from: Fragment;
  /** Conditions joined with AND (each a fragment). */
  where: Fragment[];
  sortable: readonly string[];
  defaultSort: string;
  query: { limit?: number; offset?: number; sort?: string };
  /** Column expressions to sort by when they differ from the name, e.g. `{ name: "lower(name)" }`. */
  sortExpr?: Record<string, string>;
}

export async function list<T>(tx: Tx, s: ListSpec): Promise<Page<T>> {
  const limit = s.query.limit ?? 50;
  const offset = s.query.offset ?? 0;
  const sort = s.query.sort ?? s.defaultSort;
  const desc = sort.startsWith("-");
  const col = desc ? sort.slice(1) : sort;
  if (!s.sortable.includes(col)) {
    throw invalid("query/sort", `cannot sort by ${col}; one of: ${s.sortable.join(", ")}`);
  }
  const expr = s.sortExpr?.[col] ?? `"${col}"`;
  const where = s.where.length
    ? s.where.reduce((acc, c, i) => (i === 0 ? tx`where ${c}` : tx`${acc} and ${c}`), tx``)
    : tx``;
  const order = tx.unsafe(`${expr} ${desc ? "desc" : "asc"} nulls last, id asc`);
  const rows = await tx`
    select *, count(*) over ()::int as total_count from (${s.from} ${where}) q
    order by ${order} limit ${limit} offset ${offset}`;
  return pastTheEnd<T>(rows, limit, offset, () => tx`select count(*)::int as n from (${s.from} ${where}) q`);
}

/**
 * pageOf, with the rule for a page past the end: the window count came back with no row to carry it, so the
 * total is counted by `count` (a query answering `n`) instead of reported as 0. Every list does this.
 */
export async function pastTheEnd<T>(
  rows: Record<string, unknown>[],
  limit: number,
  offset: number,
  count: () => PromiseLike<readonly Record<string, unknown>[]>,
): Promise<Page<T>> {
  if (rows.length || offset === 0) return pageOf<T>(rows, limit, offset);
  const [c] = await count();
  return pageOf<T>(rows, limit, offset, Number(c?.n ?? 0));
}

/**
 * The page of a query that selected `count(*) over ()::int as total_count`: the column is taken off the rows
 * and becomes `pagination.total` (unless `total` is given).
 */
export function pageOf<T>(
  rows: Record<string, unknown>[],
  limit: number,
  offset: number,
  total?: number,
): Page<T> {
  const t = total ?? (rows[0]?.total_count as number | undefined) ?? 0;
  for (const r of rows) delete r.total_count;
  return { data: rows as unknown as T[], pagination: { limit, offset, total: t } };
}

/** `q` search: case-insensitive substring over the given columns; LIKE wildcards in the input are literal. */
export function likePattern(q: string): string {
  return `%${q.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
}
