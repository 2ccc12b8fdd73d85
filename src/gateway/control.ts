/**
 * Collector-to-agent messages on the open Connect streams: a new configuration as soon as an administrator
 * changes it (migration 052's NOTIFY), and a re-key request when the client certificate nears its end.
 */
import type { Sql } from "postgres";
import type { Logger } from "../observability/logger.ts";
import type { Principal } from "../pki/identity.ts";
import { withTenant } from "../storage/db.ts";
import { listenWithResync } from "../storage/listen.ts";

export const AGENT_CONFIG_CHANNEL = "secumon_agent_config_changed";

/** Ask for a new certificate this long before notAfter at most (a third of the lifetime for short ones). */
export const REKEY_BEFORE_MS = 14 * 86_400_000;

/** When to send RekeyRequest for a certificate valid from `notBefore` to `notAfter` (Unix ms). */
export function rekeyAt(notBefore: number, notAfter: number): number {
  const lifetime = Number.isFinite(notBefore) ? Math.max(0, notAfter - notBefore) : REKEY_BEFORE_MS * 3;
  return notAfter - Math.min(REKEY_BEFORE_MS, lifetime / 3);
}

/** Reads an agent's configuration as the JSON text sent in ConfigUpdate (null: no such agent). */
async function agentConfigJson(sql: Sql, p: Principal): Promise<string | null> {
  const [row] = await withTenant(
    sql,
    p.tenantId,
    (tx) => tx<{ config: unknown }[]>`select config from agents where id = ${p.id}`,
  );
  return row ? JSON.stringify(row.config ?? {}) : null;
}

type Push = (configJson: string) => void;

/** The open Connect streams of this gateway, by agent, and the configuration changes pushed to them. */
export class ControlChannels {
  private readonly open = new Map<string, { p: Principal; pushes: Set<Push> }>();
  private readonly reading = new Map<string, Promise<void>>();
  private unlisten: (() => Promise<void>) | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly log: Logger,
  ) {}

  /** Registers an open Connect stream; returns the unregister. */
  register(p: Principal, push: Push): () => void {
    let e = this.open.get(p.id);
    if (!e) {
      e = { p, pushes: new Set() };
      this.open.set(p.id, e);
    }
    e.pushes.add(push);
    return () => {
      const cur = this.open.get(p.id);
      if (!cur) return;
      cur.pushes.delete(push);
      if (cur.pushes.size === 0) this.open.delete(p.id);
    };
  }

  /**
   * Reads the agent's configuration and pushes it to each of its open Connect streams on this gateway. Reads of
   * one agent run one after the other, so a slow earlier read never pushes an older configuration after a newer
   * one. Also how a new stream gets its first configuration (streams skip a configuration they already have).
   */
  changed(agentId: string): Promise<void> {
    const prev = this.reading.get(agentId) ?? Promise.resolve();
    const next = prev.then(() => this.readAndPush(agentId));
    this.reading.set(agentId, next);
    void next.finally(() => {
      if (this.reading.get(agentId) === next) this.reading.delete(agentId);
    });
    return next;
  }

  private async readAndPush(agentId: string): Promise<void> {
    const e = this.open.get(agentId);
    if (!e) return;
    let json: string | null;
    try {
      json = await agentConfigJson(this.sql, e.p);
    } catch (err) {
      this.log.warn(
        { err: String(err), id: agentId },
        "could not read an agent's configuration for Connect; it gets it at the next change or reconnect (check the database)",
      );
      return;
    }
    if (json === null) return; // deleted: the principal listener closes its streams
    for (const push of this.open.get(agentId)?.pushes ?? []) {
      // one stream failing to take it must not keep it from the agent's other streams, nor reject this read:
      // the chain of reads is awaited by Connect and `void`-ed by the listener (an unhandled rejection ends
      // the process, src/cli/crash.ts)
      try {
        push(json);
      } catch (err) {
        this.log.warn(
          { err: String(err), id: agentId },
          "could not push a configuration on one Connect stream; the agent gets it when it reconnects",
        );
      }
    }
  }

  /** LISTENs for configuration changes. After a reconnection of the listener, re-sends every open agent's. */
  async listen(): Promise<void> {
    this.unlisten = await listenWithResync(
      this.sql,
      AGENT_CONFIG_CHANNEL,
      (payload) => {
        let id: unknown;
        try {
          id = (JSON.parse(payload) as { id?: unknown }).id;
        } catch {
          id = null;
        }
        if (typeof id !== "string") {
          this.log.warn({ channel: AGENT_CONFIG_CHANNEL }, "ignoring a malformed agent-config notification");
          return;
        }
        void this.changed(id);
      },
      // a change may have been missed while not listening
      () => {
        for (const id of [...this.open.keys()]) void this.changed(id);
      },
    );
  }

  async stop(): Promise<void> {
    const u = this.unlisten;
    this.unlisten = null;
    await u?.().catch(() => {});
  }

  get openAgents(): number {
    return this.open.size;
  }
}
