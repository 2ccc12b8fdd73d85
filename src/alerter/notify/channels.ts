/**
 * What `notification_channels.config_encrypted` holds once opened (JSON), per channel type, and its
 * validation — pure, so the API validates channel writes identically. Sealed with ctx.keyring under the
 * context `notification_channels.config:<channel id>`.
 *   email:   {"to": ["ops@example.com"]}                          (SMTP server: alerter.notifications.email)
 *   slack:   {"webhook_url": "https://hooks.slack.com/services/…"} (optional: alerter.notifications.slack)
 *   webhook: {"url": "https://…", "secret": "…", "headers": {"X-Team": "ops"}, "timeout": "10s"}
 *   sms:     {"to": ["+33612345678"]}                              (Twilio account: alerter.notifications.sms)
 */
import { parseRuleDuration } from "../rules/duration.ts";
import type { ValidationError } from "../rules/validate.ts";

export const CHANNEL_TYPES = ["email", "slack", "webhook", "sms"] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];

export const channelConfigContext = (channelId: string) => `notification_channels.config:${channelId}`;

const EMAIL = /^[^@\s]+@[^@\s]+$/;
const E164 = /^\+[1-9]\d{6,14}$/;
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function httpUrl(v: unknown): boolean {
  if (typeof v !== "string") return false;
  try {
    const u = new URL(v);
    return u.protocol === "https:" || u.protocol === "http:";
  } catch {
    return false;
  }
}

export function validateChannelConfig(type: string, config: unknown): ValidationError[] {
  const errors: ValidationError[] = [];
  const err = (path: string, message: string) => errors.push({ path, message });
  if (!CHANNEL_TYPES.includes(type as ChannelType)) {
    err("/type", `type must be one of ${CHANNEL_TYPES.join(", ")}`);
    return errors;
  }
  if (!isObj(config)) {
    err("/config", "config must be a JSON object");
    return errors;
  }
  const allowed: Record<ChannelType, string[]> = {
    email: ["to"],
    slack: ["webhook_url"],
    webhook: ["url", "secret", "headers", "timeout"],
    sms: ["to"],
  };
  for (const k of Object.keys(config))
    if (!allowed[type as ChannelType].includes(k))
      err(`/config/${k}`, `unknown field "${k}" for a ${type} channel`);
  const list = (re: RegExp, what: string) => {
    const to = config.to;
    if (!Array.isArray(to) || to.length === 0) err("/config/to", `to must be a non-empty list of ${what}`);
    else
      to.forEach((x, i) => {
        if (typeof x !== "string" || !re.test(x))
          err(`/config/to/${i}`, `${JSON.stringify(x)} is not one of ${what}`);
      });
  };
  switch (type as ChannelType) {
    case "email":
      list(EMAIL, "e-mail addresses");
      break;
    case "sms":
      list(E164, "phone numbers in E.164 form (+33612345678)");
      break;
    case "slack":
      if (config.webhook_url !== undefined && !httpUrl(config.webhook_url))
        err("/config/webhook_url", "webhook_url must be an https:// URL (Slack incoming webhook)");
      break;
    case "webhook":
      if (!httpUrl(config.url)) err("/config/url", "url is required: an http:// or https:// URL");
      if (config.secret !== undefined && (typeof config.secret !== "string" || config.secret.length < 16))
        err("/config/secret", "secret must be a string of at least 16 characters (it signs each request)");
      if (
        config.headers !== undefined &&
        (!isObj(config.headers) || Object.values(config.headers).some((v) => typeof v !== "string"))
      )
        err("/config/headers", "headers must be an object of strings");
      if (
        config.timeout !== undefined &&
        (typeof config.timeout !== "string" || parseRuleDuration(config.timeout) === null)
      )
        err("/config/timeout", 'timeout must be a duration such as "10s"');
      break;
  }
  return errors;
}
