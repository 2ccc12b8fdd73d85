/** The contract of one integration (notify/<type>/index.ts). */
import type { Config } from "../../config/schema.ts";
import type { Rendered } from "./render.ts";

export type AlerterConfig = Config["alerter"];

export interface SendContext {
  idempotencyKey: string;
  kind: string;
  /** The raw payload (webhooks send it as JSON). */
  payload: Record<string, unknown>;
  /** Recipients already reached by an earlier attempt of this notification (skip them). */
  deliveredTo: readonly string[];
  /** Records a recipient as reached, so a retry after a crash does not send to it again. */
  markDelivered(recipient: string): Promise<void>;
  signal: AbortSignal;
}

export interface SendResult {
  statusCode?: number;
}

export interface Integration {
  send(message: Rendered, channelConfig: Record<string, unknown>, ctx: SendContext): Promise<SendResult>;
}

/**
 * A failed delivery. `permanent`: retrying cannot help (bad channel configuration, integration disabled, the
 * receiver rejected the request as malformed): the notification is marked failed at once.
 */
export class DeliveryError extends Error {
  override readonly name = "DeliveryError";
  constructor(
    message: string,
    readonly opts: { permanent?: boolean; statusCode?: number } = {},
  ) {
    super(message);
  }
}

/** HTTP statuses worth retrying: timeouts, rate limits, server errors. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/** Reads a response body for an error message, bounded and single-line. */
export async function bodySnippet(res: Response): Promise<string> {
  const t = await res.text().catch(() => "");
  return t.replace(/\s+/g, " ").slice(0, 200);
}
