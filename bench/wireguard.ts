/**
 * WireGuard manager figures, in network namespaces created for the run (test/wireguard/lab.ts; root needed):
 *   - enrollment: secumon_wg_assign, one transaction per agent as the gateway calls it (per second)
 *   - cold apply: start of the wgmanager (spawn wireguard-go + key, port and every peer + ip) with N peers
 *   - idle reconcile: full database ↔ interface comparison with nothing to change, N peers
 *   - live change: revoke an agent → its peer gone from the interface (NOTIFY → LISTEN → UAPI), median of 50
 * Usage: make bench-wireguard [PEERS=1000]
 */
import { executable } from "../src/assets/binaries.ts";
import { withAdmin } from "../src/storage/db.ts";
import { generateKeyPair } from "../src/wireguard/keys.ts";
import { createWgManager } from "../src/wireguard/manager.ts";
import { Uapi } from "../src/wireguard/uapi.ts";
import { migratedSql, stopTestCluster } from "../test/support/pg.ts";
import { removeTempDirs } from "../test/support/tmp.ts";
import { enrollAgent, newTenant, wgContext } from "../test/wireguard/harness.ts";
import { Lab, labUnavailable } from "../test/wireguard/lab.ts";
import { printMachine, result } from "./machine.ts";

const PEERS = Number(process.env.PEERS ?? 1000);
printMachine();
const why = labUnavailable();
if (why) {
  console.error(`bench-wireguard cannot run here: ${why}`);
  process.exit(1);
}

const lab = new Lab(`swgb${process.pid % 10000}`);
const { sql } = await migratedSql();
try {
  await lab.up();
  const host = await lab.collectorHost();
  const binary = await executable("wireguard-go", "/tmp");
  const tenant = await newTenant(sql, "bench");
  const config = { interface: "wg-secumon", endpoint: "10.250.0.1" };
  const first = wgContext(sql, config);
  // every start is a "restarted collector": same database, same master key
  const ctx = () => wgContext(sql, config, { keyring: first.keyring });

  // the server row must exist before enrollment can allocate: a first start creates it
  let m = createWgManager(ctx(), { host, binary });
  await m.start();
  await m.stop();

  const t0 = performance.now();
  const agents: { id: string }[] = [];
  for (let i = 0; i < PEERS; i++) agents.push(await enrollAgent(sql, tenant, generateKeyPair().publicKey));
  const enrollSeconds = (performance.now() - t0) / 1000;
  console.log(`enrolled ${PEERS} agents in ${enrollSeconds.toFixed(2)} s`);

  const t1 = performance.now();
  m = createWgManager(ctx(), { host, binary });
  await m.start();
  const coldMs = performance.now() - t1;
  const uapi = new Uapi(host.socketPath("wg-secumon"));
  const applied = (await uapi.get()).peers.length;
  console.log(`cold start with ${applied} peers: ${coldMs.toFixed(0)} ms`);

  const idle: number[] = [];
  for (let i = 0; i < 5; i++) idle.push((await m.reconcile()).ms);
  const idleMs = idle.sort((a, b) => a - b)[2] as number;

  const live: number[] = [];
  for (const a of agents.slice(0, 50)) {
    const key = m.peers().find((p) => p.id === a.id)?.public_key;
    const s = performance.now();
    await withAdmin(sql, (tx) => tx`update agents set status = 'revoked' where id = ${a.id}`);
    while ((await uapi.get()).peers.some((p) => p.publicKey === key)) await Bun.sleep(1);
    live.push(performance.now() - s);
  }
  const liveMs = live.sort((a, b) => a - b)[25] as number;
  await m.stop();

  result({
    peers: applied,
    enroll_per_s: Math.round(PEERS / enrollSeconds),
    cold_apply_ms: Math.round(coldMs),
    idle_reconcile_ms: Math.round(idleMs),
    live_revoke_ms_p50: Math.round(liveMs),
  });
} finally {
  await lab.down();
  await stopTestCluster();
  removeTempDirs();
}
