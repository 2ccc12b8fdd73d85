/**
 * Lists, the same everywhere: `?limit=50&offset=0&sort=-created_at` plus per-resource filters; the answer is
 * `{ data: [...], pagination: { limit, offset, total } }`. Sort columns come from a per-resource allow-list
 * (a name outside it is 422), values are always bound parameters, never spliced into SQL.
 */
import { t } from "elysia";
import type postgres from "postgres";
import type { TenantRead, Tx } from "../../storage/db.ts";
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

/** Limit, offset and the ORDER BY text of a list; 422 for a column outside the allow-list. */
function pageOrder(s: Pick<ListSpec, "sortable" | "defaultSort" | "query" | "sortExpr">) {
  const sort = s.query.sort ?? s.defaultSort;
  const desc = sort.startsWith("-");
  const col = desc ? sort.slice(1) : sort;
  if (!s.sortable.includes(col)) {
    throw invalid("query/sort", `cannot sort by ${col}; one of: ${s.sortable.join(", ")}`);
  }
  const expr = s.sortExpr?.[col] ?? `"${col}"`;
  return {
    limit: s.query.limit ?? 50,
    offset: s.query.offset ?? 0,
    order: `${expr} ${desc ? "desc" : "asc"} nulls last, id asc`,
  };
}

const whereOf = (tx: Tx | postgres.ReservedSql, where: Fragment[]) =>
  where.length ? where.reduce((acc, c, i) => (i === 0 ? tx`where ${c}` : tx`${acc} and ${c}`), tx``) : tx``;

export async function list<T>(tx: Tx, s: ListSpec): Promise<Page<T>> {
  const { limit, offset, order: orderText } = pageOrder(s);
  const where = whereOf(tx, s.where);
  const order = tx.unsafe(orderText);
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

export interface JsonListSpec extends Omit<ListSpec, "from" | "where"> {
  /** `from` and `where` as in ListSpec, built with the statement's own `tx`. */
  select: (tx: postgres.ReservedSql) => Pick<ListSpec, "from" | "where">;
  /** One item's JSON, an SQL expression over the columns of `from` (jsonObject). */
  item: string;
}

/**
 * A list page as the JSON text of the whole answer (`{"data":[…],"pagination":{…}}`), built by PostgreSQL in
 * one read-only statement (tenantRead, one round trip): no row objects and no JSON.stringify on the API's one
 * thread, which is what the list costs most. The items must be the same JSON the row objects would give
 * (jsonObject); test/api/fleet.test.ts compares them with the single-item answers.
 */
export async function listJson(read: TenantRead, s: JsonListSpec): Promise<string> {
  const { limit, offset, order } = pageOrder(s);
  const [r] = await read((tx) => {
    const { from, where } = s.select(tx);
    // json_agg over the sorted, limited subquery: a plain aggregate reads its input in order
    return tx<{ data: string; total: number | null }[]>`
      select coalesce(json_agg(p.j), '[]')::text as data, max(p.total)::int as total from (
        select ${tx.unsafe(s.item)} as j, count(*) over () as total from (${from} ${whereOf(tx, where)}) q
        order by ${tx.unsafe(order)} limit ${limit} offset ${offset}) p`;
  });
  let total = r?.total ?? 0;
  if (r?.total === null && offset > 0) {
    // a page past the end: the real total, as every list answers it (pastTheEnd)
    const [c] = await read((tx) => {
      const { from, where } = s.select(tx);
      return tx<{ n: number }[]>`select count(*)::int as n from (${from} ${whereOf(tx, where)}) q`;
    });
    total = c?.n ?? 0;
  }
  return `{"data":${r?.data ?? "[]"},"pagination":{"limit":${limit},"offset":${offset},"total":${total}}}`;
}

/**
 * The SQL building one item's JSON from the columns `names` of a list's `from` (alias q), as postgres.js row
 * objects serialise: timestamptz columns listed in `timestamps` as JavaScript's toISOString() (UTC,
 * milliseconds, `Z`); text, uuid, boolean, int4, arrays and json(b) as they are. int8 and numeric columns
 * must be cast to text in `from` (postgres.js reads them as strings).
 */
export function jsonObject(names: readonly string[], timestamps: readonly string[] = []): string {
  for (const n of [...names, ...timestamps])
    if (!/^[a-z_][a-z0-9_]*$/.test(n)) throw new Error(`jsonObject: not a column name: ${n}`);
  const value = (n: string) =>
    timestamps.includes(n) ? `to_char(q.${n} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')` : `q.${n}`;
  return `json_build_object(${names.map((n) => `'${n}', ${value(n)}`).join(", ")})`;
}

/** The output names of a column list (`a`, `f(x) as b` → `a`, `b`). */
export const columnNames = (cols: readonly string[]): string[] =>
  cols.map((c) => (c.split(/\s+as\s+/i).pop() ?? c).trim());

/** `q` search: case-insensitive substring over the given columns; LIKE wildcards in the input are literal. */
export function likePattern(q: string): string {
  return `%${q.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
}
