/**
 * Messages rendered from the outbox payload: a subject, a plain-text body and a short one-line form (SMS,
 * Slack fallback). Annotations may use {{labels.NAME}}, {{value}} and {{threshold}} placeholders.
 */
export interface RenderAlert {
  instance_id?: string;
  labels?: Record<string, string>;
  value?: number | null;
  threshold?: number | null;
  fired_at?: string | null;
  resolved_at?: string | null;
}

export interface Rendered {
  subject: string;
  text: string;
  short: string;
  status: "firing" | "resolved" | "test";
  severity: string;
  links: string[];
}

const fmt = (v: number | null | undefined) =>
  v === null || v === undefined ? "n/a" : String(Math.round(v * 1000) / 1000);

export function expand(template: string, a: RenderAlert): string {
  return template.replace(
    /\{\{\s*(labels\.([A-Za-z_][A-Za-z0-9_]*)|value|threshold)\s*\}\}/g,
    (_, what, label) =>
      label ? (a.labels?.[label] ?? "") : what === "value" ? fmt(a.value) : fmt(a.threshold),
  );
}

export function render(payload: Record<string, unknown>, externalUrl: string): Rendered {
  const base = externalUrl.replace(/\/+$/, "");
  if (payload.kind === "test" || !payload.rule) {
    const msg =
      typeof payload.message === "string" ? payload.message : "This is a test notification from SecuMon.";
    return {
      subject: "[TEST] SecuMon notification",
      text: msg,
      short: `[TEST] ${msg}`,
      status: "test",
      severity: "info",
      links: [],
    };
  }
  const rule = payload.rule as { name: string; severity: string };
  const alerts = (payload.alerts as RenderAlert[] | undefined) ?? [];
  const annotations = (payload.annotations as Record<string, string> | undefined) ?? {};
  const resolved = payload.status === "resolved";
  const kind = String(payload.kind);
  const tag = resolved
    ? "RESOLVED"
    : kind === "escalation"
      ? "ESCALATED"
      : kind === "repeat"
        ? "STILL FIRING"
        : "FIRING";
  const subject = `[${tag}${alerts.length > 1 ? `:${alerts.length}` : ""}] ${rule.name} (${rule.severity})`;
  const links = base ? alerts.map((a) => `${base}/alerts/${a.instance_id ?? ""}`) : [];
  const lines = alerts.map((a, i) => {
    const l = a.labels ?? {};
    const where = l.agent ?? l.target ?? l.probe ?? l.agent_id ?? l.target_id ?? "";
    const extra = ["mountpoint", "device", "interface", "test_type", "oid_name"]
      .filter((k) => l[k])
      .map((k) => `${k}=${l[k]}`)
      .join(" ");
    const summary = annotations.summary ? ` — ${expand(annotations.summary, a)}` : "";
    const when = resolved ? `resolved ${a.resolved_at ?? ""}` : `since ${a.fired_at ?? ""}`;
    return `- ${where}${extra ? ` (${extra})` : ""}: value ${fmt(a.value)}, threshold ${fmt(a.threshold)}, ${when}${summary}${links[i] ? `\n  ${links[i]}` : ""}`;
  });
  const description =
    annotations.description && alerts[0] ? `\n${expand(annotations.description, alerts[0])}\n` : "";
  const text = `${subject}\n${description}\n${lines.join("\n")}\n`;
  const first = alerts[0]?.labels ?? {};
  const where = first.agent ?? first.target ?? first.agent_id ?? "";
  const short = `${subject}${where ? ` on ${where}` : ""}${alerts.length > 1 ? ` and ${alerts.length - 1} more` : ""}: value ${fmt(alerts[0]?.value)}`;
  return { subject, text, short, status: resolved ? "resolved" : "firing", severity: rule.severity, links };
}
