/**
 * Generic webhook: POST the payload as JSON. Headers:
 *   Idempotency-Key: the outbox key (the same on every retry of one notification);
 *   X-Secumon-Timestamp: Unix seconds; X-Secumon-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
 *   when the channel has a secret. A receiver verifies the signature and drops keys it has already seen.
 */
import { createHmac } from "node:crypto";
import { parseRuleDuration } from "../../rules/duration.ts";
import { post } from "../http.ts";
import type { Rendered } from "../render.ts";
import { type AlerterConfig, DeliveryError, type Integration } from "../types.ts";

type WebhookConfig = AlerterConfig["notifications"]["webhook"];

export function sign(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

export function webhookIntegration(cfg: WebhookConfig, defaultTimeoutMs: number): Integration {
  return {
    async send(message: Rendered, channel, ctx) {
      if (!cfg.enabled)
        throw new DeliveryError("webhook notifications are off (alerter.notifications.webhook.enabled)", {
          permanent: true,
        });
      const url = channel.url as string | undefined;
      if (!url) throw new DeliveryError("the webhook channel has no url", { permanent: true });
      const body = JSON.stringify({
        ...ctx.payload,
        idempotency_key: ctx.idempotencyKey,
        title: message.subject,
        message: message.text,
      });
      const timestamp = String(Math.floor(Date.now() / 1000));
      const headers: Record<string, string> = {
        ...((channel.headers as Record<string, string> | undefined) ?? {}),
        "content-type": "application/json",
        "user-agent": "secumon-collector",
        "idempotency-key": ctx.idempotencyKey,
        "x-secumon-timestamp": timestamp,
      };
      if (typeof channel.secret === "string" && channel.secret)
        headers["x-secumon-signature"] = sign(channel.secret, timestamp, body);
      const timeoutMs =
        (typeof channel.timeout === "string" ? parseRuleDuration(channel.timeout) : null) ?? defaultTimeoutMs;
      const r = await post("webhook", url, { headers, body, timeoutMs, signal: ctx.signal });
      return { statusCode: r.status };
    },
  };
}
