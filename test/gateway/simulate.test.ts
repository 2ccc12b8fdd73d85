/**
 * `secumon-collector simulate` as an operator runs it (the CLI from source, a process of its own) against a real
 * gateway: it enrolls, streams, reports sent / acknowledged / rejected as JSON, and refuses bad usage clearly.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { withAdmin } from "../../src/storage/db.ts";
import { fatalOf, runCli } from "../support/cli.ts";
import { tempDir } from "../support/tmp.ts";
import { countMessages, createTenant, createToken, type Harness, startGateway } from "./harness.ts";

let h: Harness;
let caFile: string;

beforeAll(async () => {
  h = await startGateway({ rate_limiting: { enabled: false } });
  caFile = join(tempDir("secumon-sim-"), "ca.pem");
  writeFileSync(caFile, h.gw.caPem);
});

afterAll(async () => {
  await h?.stop();
});

describe("secumon-collector simulate", () => {
  test("enrolls N agents, streams for --duration, and ends with a summary whose acknowledged batches are in JetStream", async () => {
    const tenant = await createTenant(h.sql);
    const token = await createToken(h.sql, tenant);
    const r = await runCli(
      [
        "simulate",
        "--gateway",
        h.address,
        "--ca",
        caFile,
        "--token",
        token,
        "--agents",
        "2",
        "--rate",
        "5",
        "--samples",
        "20",
        "--duration",
        "2s",
      ],
      { timeoutMs: 60_000 },
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const summary = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, number>;
    expect(summary).toMatchObject({ enrolled: 2, rejected: 0, pending: 0 });
    expect(summary.acked).toBeGreaterThan(0);
    expect(summary.sent).toBeGreaterThanOrEqual(summary.acked!);
    const [n] = await withAdmin(
      h.sql,
      (tx) => tx<{ n: number }[]>`select count(*)::int as n from agents where tenant_id = ${tenant}`,
    );
    expect(n!.n).toBe(2);
    expect(await countMessages(h.nc, `secumon.*.${tenant}.>`)).toBe(summary.acked!);
  }, 90_000);

  test("a bad token is reported as the gateway's refusal; bad usage exits 2 naming the flag", async () => {
    const bad = await runCli(
      ["simulate", "--gateway", h.address, "--ca", caFile, "--token", `smet_${"q".repeat(43)}`],
      { timeoutMs: 60_000 },
    );
    expect(bad.code).toBe(1);
    expect(fatalOf(bad.stderr).msg).toMatch(/unknown enrollment token; ask a tenant administrator/);
    const mixed = await runCli(["simulate", "--ca", caFile, "--token", "smet_x", "--kinds", "metrics,scans"]);
    expect(mixed.code).toBe(2);
    expect(fatalOf(mixed.stderr).msg).toMatch(/cannot be mixed/);
    const noCa = await runCli(["simulate", "--token", "smet_x"]);
    expect(noCa.code).toBe(2);
    expect(fatalOf(noCa.stderr).msg).toMatch(/--ca FILE is required/);
  }, 90_000);
});
