/** Prints the machine a benchmark ran on (every benchmark starts with this). */
import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";

export function printMachine(): void {
  const c = cpus();
  console.log(
    `machine: ${c[0]?.model ?? "unknown cpu"} x${c.length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
      `linux ${release()}, bun ${Bun.version}`,
  );
}

export function result(fields: Record<string, number | string>): void {
  console.log(
    `RESULT ${Object.entries(fields)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")}`,
  );
}

/** fdatasync()s per second of 16 KiB appends in `dir` (the filesystem nats-server writes to). */
export function fsyncRate(dir: string, ms = 2000): number {
  const path = join(dir, "fsync-probe");
  const fd = openSync(path, "w");
  const block = new Uint8Array(16 * 1024).fill(7);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    writeSync(fd, block);
    fdatasyncSync(fd);
    n++;
  }
  const secs = (performance.now() - t0) / 1000;
  closeSync(fd);
  rmSync(path, { force: true });
  return Math.round(n / secs);
}
