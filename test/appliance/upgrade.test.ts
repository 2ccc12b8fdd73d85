/**
 * appliance/sbin/secumon-upgrade on the compiled collector (make build): upgrade in place keeps the previous
 * binary as .prev and ends with /ready 200 on the same data; a new binary that never becomes ready is rolled
 * back by itself; a binary that does not run changes nothing; --rollback without a .prev says so.
 *
 * systemd is not PID 1 on this machine, so the service manager is a stand-in script with systemctl's
 * start/stop/restart verbs that runs the binary the way the unit does. The real systemd path is exercised by
 * `make image-boot-test`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../../src/supervisor/ports.ts";
import { ROOT } from "../support/cli.ts";
import { tempDir } from "../support/tmp.ts";

const BUILT = join(ROOT, "dist/secumon-collector");
const SCRIPT = join(ROOT, "appliance/sbin/secumon-upgrade");

let dir: string;
let bin: string;
let env: Record<string, string>;
let port: number;

const FAKE_SYSTEMCTL = `#!/bin/bash
# stand-in for systemctl: start/stop/restart of one service = the collector binary in its own session
set -u
pidfile=$STATE/pid
stop() {
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile"); kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
}
start() {
  setsid "$COLLECTOR_BIN" serve --data-dir "$STATE/data" --roles api >>"$STATE/collector.log" 2>&1 < /dev/null &
  echo $! >"$pidfile"
}
case "$1" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "fake systemctl: $1 not supported" >&2; exit 1 ;;
esac
`;

function run(args: string[], extra: Record<string, string> = {}) {
  const p = Bun.spawnSync([SCRIPT, ...args], { env: { ...env, ...extra }, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString() + p.stderr.toString() };
}

async function ready(): Promise<number> {
  return fetch(`http://127.0.0.1:${port}/ready`).then(
    (r) => r.status,
    () => 0,
  );
}

beforeAll(async () => {
  dir = tempDir("secumon-upgrade-");
  mkdirSync(join(dir, "bin"));
  bin = join(dir, "bin/secumon-collector");
  copyFileSync(BUILT, bin);
  chmodSync(bin, 0o755);
  const systemctl = join(dir, "systemctl");
  writeFileSync(systemctl, FAKE_SYSTEMCTL, { mode: 0o755 });
  port = freePort();
  env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: dir,
    STATE: dir,
    COLLECTOR_BIN: bin,
    COLLECTOR_CONFIG: "/nonexistent",
    SYSTEMCTL: systemctl,
    READY_URL: `http://127.0.0.1:${port}/ready`,
    READY_TIMEOUT: "90",
    SECUMON_API__PORT: String(port),
    SECUMON_NATS__PORT: String(freePort()),
    SECUMON_DATABASE__EMBEDDED__PORT: String(freePort()),
    SECUMON_LOGGING__LEVEL: "warn",
  };
  Bun.spawnSync([systemctl, "start"], { env });
  for (let i = 0; i < 600 && (await ready()) !== 200; i++) await Bun.sleep(100);
  expect(await ready()).toBe(200);
}, 90_000);

afterAll(() => {
  if (env) Bun.spawnSync([env.SYSTEMCTL!, "stop"], { env });
});

describe("secumon-upgrade", () => {
  test("upgrade in place: new binary installed, previous kept as .prev, ready on the same data", () => {
    const next = join(tempDir(), "secumon-collector-next");
    // a distinct file that is the same collector, so old and new can be told apart
    writeFileSync(next, `#!/bin/sh\nexec ${BUILT} "$@"\n`, { mode: 0o755 });
    const before = readFileSync(bin);
    const r = run([next]);
    expect(r.out).toContain("no --backup-key: no backup taken");
    expect(r.out).toContain("is ready (previous binary kept as");
    expect(r.code).toBe(0);
    expect(readFileSync(`${bin}.prev`).equals(before)).toBe(true);
    expect(readFileSync(bin, "utf8")).toContain(`exec ${BUILT}`);
  }, 120_000);

  test("a new binary that never becomes ready is rolled back by itself", async () => {
    const good = readFileSync(bin);
    const bad = join(tempDir(), "secumon-collector-bad");
    writeFileSync(
      bad,
      '#!/bin/sh\n[ "$1" = version ] && { echo "secumon-collector 9.9.9"; exit 0; }\nexit 1\n',
      {
        mode: 0o755,
      },
    );
    const r = run([bad], { READY_TIMEOUT: "6" });
    expect(r.out).toContain("did not become ready within 6s");
    expect(r.out).toContain("rolled back:");
    expect(r.code).toBe(1);
    expect(readFileSync(bin).equals(good)).toBe(true);
    expect(readFileSync(`${bin}.failed`, "utf8")).toContain("9.9.9");
    expect(await ready()).toBe(200);
  }, 120_000);

  test("a binary that does not run changes nothing; --rollback without .prev says so", () => {
    const before = readFileSync(bin);
    const junk = join(tempDir(), "not-a-binary");
    writeFileSync(junk, "\x7fELF this is not an executable");
    let r = run([junk]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("does not run on this machine");
    expect(readFileSync(bin).equals(before)).toBe(true);
    expect(existsSync(`${bin}.prev`)).toBe(false); // consumed by the automatic rollback above
    r = run(["--rollback"]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("no previous binary");
    r = run([join(tempDir(), "missing")]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("does not exist");
  });
});
