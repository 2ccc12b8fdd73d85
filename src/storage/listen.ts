/**
 * LISTEN with postgres.js's own reconnection, for callers that follow rows through NOTIFY: notifications sent
 * while the listening connection was down are lost, so `onReconnect` runs each time the listener is back after
 * losing it (not on the first LISTEN), for the caller to re-read what it follows. Returns the unlisten.
 */
import type { Sql } from "./db.ts";

export async function listenWithResync(
  sql: Sql,
  channel: string,
  onNotify: (payload: string) => void,
  onReconnect: () => void,
): Promise<() => Promise<void>> {
  let first = true;
  const sub = await sql.listen(channel, onNotify, () => {
    if (first) first = false;
    else onReconnect();
  });
  return sub.unlisten;
}
