/** Prints the machine a benchmark ran on (every benchmark starts with this). */
import { cpus, release, totalmem } from "node:os";

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
