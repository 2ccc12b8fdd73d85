/**
 * A first-come, first-served limit on how many calls run at once, the rest waiting in order. Used for the
 * API's read statements (READ_SLOTS per pool, src/api/lib/tx.ts) and for argon2 hashes (one per core,
 * src/auth/passwords.ts). With 2 cores, 20 statements running in PostgreSQL at once are time-sliced by the
 * kernel, contend for PostgreSQL's lock table (a generic plan over partitioned tables locks every partition)
 * and all finish late together; a few at a time answer sooner (docs/api.md has the figures).
 */
export interface Slots {
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** Calls running and waiting (for tests and metrics). */
  readonly busy: number;
  readonly waiting: number;
}

export function slots(size: number): Slots {
  let busy = 0;
  const queue: (() => void)[] = [];
  return {
    async run(fn) {
      if (busy < size) busy++;
      else await new Promise<void>((resolve) => queue.push(resolve));
      try {
        return await fn();
      } finally {
        const next = queue.shift();
        if (next)
          next(); // the slot passes on as it is
        else busy--;
      }
    },
    get busy() {
      return busy;
    },
    get waiting() {
      return queue.length;
    },
  };
}
