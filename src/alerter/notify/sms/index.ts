/**
 * SMS through Twilio's REST API: POST {api_url}/2010-04-01/Accounts/{AccountSid}/Messages.json, HTTP basic
 * auth (AccountSid:AuthToken), form-encoded To, From, Body. One request per recipient; each recipient reached
 * is recorded, so a retry after a crash or a partial failure does not text anyone twice.
 */
import { post } from "../http.ts";
import type { Rendered } from "../render.ts";
import { type AlerterConfig, DeliveryError, type Integration } from "../types.ts";

type SmsConfig = AlerterConfig["notifications"]["sms"];

export function smsIntegration(cfg: SmsConfig, timeoutMs: number): Integration {
  return {
    async send(message: Rendered, channel, ctx) {
      if (!cfg.enabled)
        throw new DeliveryError(
          "SMS notifications are off: set alerter.notifications.sms.enabled with account_sid, auth_token and from",
          { permanent: true },
        );
      const to = (channel.to as string[] | undefined) ?? [];
      if (to.length === 0)
        throw new DeliveryError("the SMS channel has no recipients (config.to)", { permanent: true });
      const url = `${cfg.api_url.replace(/\/+$/, "")}/2010-04-01/Accounts/${encodeURIComponent(cfg.account_sid)}/Messages.json`;
      const auth = `Basic ${Buffer.from(`${cfg.account_sid}:${cfg.auth_token}`).toString("base64")}`;
      let status = 201;
      for (const number of to) {
        if (ctx.deliveredTo.includes(number)) continue;
        const r = await post("Twilio", url, {
          headers: {
            authorization: auth,
            "content-type": "application/x-www-form-urlencoded",
            "user-agent": "secumon-collector",
          },
          body: new URLSearchParams({
            To: number,
            From: cfg.from,
            Body: message.short.slice(0, 1600),
          }).toString(),
          timeoutMs,
          signal: ctx.signal,
        });
        status = r.status;
        await ctx.markDelivered(number);
      }
      return { statusCode: status };
    },
  };
}
