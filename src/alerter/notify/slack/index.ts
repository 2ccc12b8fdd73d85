/** Slack incoming webhook: POST {"text", "blocks"} as JSON to the channel's (or the global) webhook URL. */
import { post } from "../http.ts";
import type { Rendered } from "../render.ts";
import { type AlerterConfig, DeliveryError, type Integration } from "../types.ts";

type SlackConfig = AlerterConfig["notifications"]["slack"];

export function slackIntegration(cfg: SlackConfig, timeoutMs: number): Integration {
  return {
    async send(message: Rendered, channel, ctx) {
      const url = (channel.webhook_url as string | undefined) || (cfg.enabled ? cfg.webhook_url : "");
      if (!url)
        throw new DeliveryError(
          "the Slack channel has no webhook_url and alerter.notifications.slack is not enabled with one",
          { permanent: true },
        );
      const icon =
        message.status === "resolved"
          ? ":white_check_mark:"
          : message.severity === "critical"
            ? ":rotating_light:"
            : ":warning:";
      const body = JSON.stringify({
        text: message.short,
        blocks: [
          { type: "header", text: { type: "plain_text", text: message.subject.slice(0, 150) } },
          { type: "section", text: { type: "mrkdwn", text: `${icon} ${message.text}`.slice(0, 3000) } },
        ],
      });
      const r = await post("Slack webhook", url, {
        headers: { "content-type": "application/json", "user-agent": "secumon-collector" },
        body,
        timeoutMs,
        signal: ctx.signal,
      });
      return { statusCode: r.status };
    },
  };
}
