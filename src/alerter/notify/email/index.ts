/** Email through SMTP (nodemailer): STARTTLS on 587 (required), implicit TLS on 465, optional AUTH. */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import nodemailer, { type Transporter } from "nodemailer";
import type { Rendered } from "../render.ts";
import { type AlerterConfig, DeliveryError, type Integration } from "../types.ts";

type EmailConfig = AlerterConfig["notifications"]["email"];

export function emailIntegration(cfg: EmailConfig): Integration {
  let transport: Transporter | null = null;
  const get = () => {
    if (!transport) {
      const implicitTls = cfg.smtp_port === 465;
      transport = nodemailer.createTransport({
        host: cfg.smtp_host,
        port: cfg.smtp_port,
        secure: implicitTls,
        requireTLS: !implicitTls,
        ...(cfg.username ? { auth: { user: cfg.username, pass: cfg.password } } : {}),
        tls: {
          ...(isIP(cfg.smtp_host) ? {} : { servername: cfg.smtp_host }),
          ...(cfg.ca_file ? { ca: readFileSync(cfg.ca_file) } : {}),
        },
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 30_000,
      });
    }
    return transport;
  };
  return {
    async send(message: Rendered, channel, ctx) {
      if (!cfg.enabled)
        throw new DeliveryError(
          "email notifications are off: set alerter.notifications.email.enabled (with smtp_host and from) or remove the email channel",
          { permanent: true },
        );
      const to = (channel.to as string[] | undefined) ?? [];
      if (to.length === 0)
        throw new DeliveryError("the email channel has no recipients (config.to)", { permanent: true });
      try {
        const info = await get().sendMail({
          from: cfg.from,
          to,
          subject: message.subject,
          text: message.text,
          messageId: `<${ctx.idempotencyKey.replace(/[^A-Za-z0-9.-]/g, ".")}@secumon>`,
          headers: {
            "X-Secumon-Idempotency-Key": ctx.idempotencyKey,
            "X-Secumon-Severity": message.severity,
          },
        });
        const code = Number(/^(\d{3})/.exec(String(info.response ?? ""))?.[1] ?? 250);
        return { statusCode: code };
      } catch (e) {
        const err = e as { code?: string; responseCode?: number; message: string };
        const rc = err.responseCode;
        if (err.code === "EAUTH")
          throw new DeliveryError(
            `SMTP server ${cfg.smtp_host}:${cfg.smtp_port} refused the login: check alerter.notifications.email.username and password`,
            { permanent: true, ...(rc ? { statusCode: rc } : {}) },
          );
        const permanent = rc !== undefined && rc >= 500 && rc < 600;
        throw new DeliveryError(
          `SMTP delivery through ${cfg.smtp_host}:${cfg.smtp_port} failed: ${err.message.replace(/\s+/g, " ").slice(0, 200)}${permanent ? "" : "; will retry"}`,
          { permanent, ...(rc ? { statusCode: rc } : {}) },
        );
      }
    },
  };
}
