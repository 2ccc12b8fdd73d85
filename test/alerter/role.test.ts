/** The alerter role inside a whole collector: it starts, takes the lead, reports on /metrics, and stops. */
import { expect, test } from "bun:test";
import { startCollector, testConfig, waitFor } from "../support/collector.ts";

test("the alerter role runs in the collector and stops cleanly", async () => {
  const c = await startCollector(testConfig({ roles: ["alerter"], alerter: { evaluation_interval: "1s" } }));
  try {
    const text = await waitFor(
      async () => {
        const t = await (await fetch(`${c.base}/metrics`)).text();
        return /secumon_alerter_leader 1/.test(t) && /secumon_alerter_cycle_seconds_count [1-9]/.test(t) && t;
      },
      30_000,
      "the alerter to lead and evaluate",
    );
    expect(text).toContain('secumon_alerter_rules{status="evaluated"} 0');
    expect((await fetch(`${c.base}/ready`)).status).toBe(200);
  } finally {
    await c.stop();
  }
  await c.stop(); // twice is safe
}, 90_000);
