/** One HTTP POST for the HTTP integrations: bounded time, errors classified for retry. */
import { bodySnippet, DeliveryError, retryableStatus } from "./types.ts";

export async function post(
  what: string,
  url: string,
  init: { headers: Record<string, string>; body: string; timeoutMs: number; signal: AbortSignal },
): Promise<{ status: number; body: string }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: init.headers,
      body: init.body,
      redirect: "manual",
      signal: AbortSignal.any([init.signal, AbortSignal.timeout(init.timeoutMs)]),
    });
  } catch (e) {
    const err = e as Error;
    const reason = err.name === "TimeoutError" ? `no answer within ${init.timeoutMs} ms` : err.message;
    throw new DeliveryError(`${what}: request to ${safeUrl(url)} failed (${reason}); will retry`);
  }
  if (res.status >= 200 && res.status < 300)
    return { status: res.status, body: await res.text().catch(() => "") };
  const snippet = await bodySnippet(res);
  const permanent = !retryableStatus(res.status);
  throw new DeliveryError(
    `${what}: ${safeUrl(url)} answered ${res.status}${snippet ? ` (${snippet})` : ""}${permanent ? "; not retried: check the channel's configuration" : "; will retry"}`,
    { permanent, statusCode: res.status },
  );
}

/** Scheme and host only: paths (Slack webhook tokens) and query strings can hold secrets. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === "/" ? "/" : "/…"}`;
  } catch {
    return "(invalid URL)";
  }
}
