/** A process that installs exitOnCrash and then fails as argv[2] says (test/crash.test.ts). */
import { exitOnCrash } from "../../src/cli/crash.ts";
import { createLogger } from "../../src/observability/logger.ts";

const log = createLogger({ level: "info" });
exitOnCrash(log, async () => {
  await Bun.sleep(50);
  process.stdout.write('{"stopped":true}\n');
});
setTimeout(() => {
  if (process.argv[2] === "reject") void Promise.reject(new Error("nobody awaited this"));
  else throw new Error("thrown from a timer");
}, 10);
setTimeout(() => {}, 60_000); // keeps running unless the handler exits
