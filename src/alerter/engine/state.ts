/**
 * The per-instance state machine (Prometheus rules/alerting.go, plus resolution and acknowledgement):
 *
 *   inactive ──active──▶ pending ──held for for_duration──▶ firing ──not active for keep_firing_for──▶ resolved
 *      ▲                    │ not active                       ▲ active again: keep firing                │
 *      └────────────────────┘                                  └──────────────── active again: new episode ┘
 *
 * Pure: transitions are computed from the instance, whether its condition holds now, and `now`.
 */
export type AlertState = "pending" | "firing" | "resolved";

export interface Instance {
  id: string;
  tenantId: string;
  ruleId: string;
  fingerprint: string;
  /** Full labels: rule labels, alertname, severity, rule_id and the series' labels. */
  labels: Record<string, string>;
  state: AlertState;
  activeAt: number;
  firedAt: number | null;
  resolvedAt: number | null;
  keepFiringSince: number | null;
  value: number | null;
  threshold: number | null;
  historyId: string | null;
  notified: boolean;
  lastSentAt: number | null;
  repeatCount: number;
  escalationLevel: number;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
}

export type Transition = "none" | "pending" | "firing" | "resolved" | "inactive";

export interface StepOptions {
  forMs: number;
  keepFiringForMs: number;
}

/**
 * Advances one existing instance (or null) given whether its condition holds now. Returns the transition; the
 * instance is updated in place (a brand-new pending/firing instance is created by the caller with `start`).
 */
export function step(
  inst: Instance,
  holds: { value: number; threshold: number } | null,
  now: number,
  o: StepOptions,
): Transition {
  if (holds) {
    inst.value = holds.value;
    inst.threshold = holds.threshold;
    switch (inst.state) {
      case "resolved":
        restart(inst, now);
        return maybeFire(inst, now, o) ? "firing" : "pending";
      case "pending":
        return maybeFire(inst, now, o) ? "firing" : "none";
      case "firing":
        inst.keepFiringSince = null;
        return "none";
    }
  }
  switch (inst.state) {
    case "pending":
      return "inactive";
    case "firing":
      inst.keepFiringSince ??= now;
      if (now - inst.keepFiringSince < o.keepFiringForMs) return "none";
      inst.state = "resolved";
      inst.resolvedAt = now;
      inst.keepFiringSince = null;
      return "resolved";
    case "resolved":
      return "none";
  }
}

/** Starts a new episode on an instance (first time, or after a resolution). */
export function restart(inst: Instance, now: number): void {
  inst.state = "pending";
  inst.activeAt = now;
  inst.firedAt = null;
  inst.resolvedAt = null;
  inst.keepFiringSince = null;
  inst.historyId = null;
  inst.notified = false;
  inst.repeatCount = 0;
  inst.escalationLevel = 0;
  inst.acknowledgedAt = null;
  inst.acknowledgedBy = null;
}

/** pending → firing once the condition held for for_duration (immediately when it is 0). */
export function maybeFire(inst: Instance, now: number, o: StepOptions): boolean {
  if (inst.state !== "pending" || now - inst.activeAt < o.forMs) return false;
  inst.state = "firing";
  inst.firedAt = now;
  return true;
}
