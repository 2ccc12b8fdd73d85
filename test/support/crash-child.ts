/** A process that installs exitOnCrash and then fails as argv[2] says (test/crash.test.ts). */
import { exitOnCrash } from "../../src/cli/crash.ts";
import { createLogger } from "../../src/observability/logger.ts";

const log = createLogger({ level: "info" });
const how = process.argv[2];
exitOnCrash(log, async () => {
  // "hang": a stop that never ends and holds nothing that keeps the process alive
  if (how === "hang") return new Promise<void>(() => {});
  await Bun.sleep(50);
  process.stdout.write('{"stopped":true}\n');
});
setTimeout(() => {
  if (how === "reject") void Promise.reject(new Error("nobody awaited this"));
  else throw new Error("thrown from a timer");
}, 10);
if (how !== "hang") setTimeout(() => {}, 60_000); // keeps running unless the handler exits
