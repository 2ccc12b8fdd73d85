/**
 * src/cli/crash.ts, as `serve` installs it: an error nothing caught is one JSON `fatal` line with the stack,
 * then the collector stops (bounded) and exits 1 for its supervisor to restart it.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";

for (const how of ["throw", "reject"] as const) {
  test(`${how === "throw" ? "an uncaught exception" : "an unhandled rejection"}: fatal JSON line, stop, exit 1`, async () => {
    const p = Bun.spawn([process.execPath, join(import.meta.dir, "support/crash-child.ts"), how], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const code = await p.exited;
    const lines = (await new Response(p.stdout).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(code).toBe(1);
    const fatal = lines.find((l) => l.level === "fatal");
    expect(fatal?.msg).toContain(how === "throw" ? "uncaught exception" : "unhandled promise rejection");
    expect(fatal?.msg).toContain("exits 1 so that its supervisor starts it again");
    expect(fatal?.err).toBe(how === "throw" ? "thrown from a timer" : "nobody awaited this");
    expect(fatal?.stack).toContain("crash-child.ts");
    expect(lines.some((l) => l.stopped === true)).toBe(true);
  });
}

test("a stop that hangs on nothing the event loop waits for still ends in exit 1, not 0", async () => {
  const p = Bun.spawn([process.execPath, join(import.meta.dir, "support/crash-child.ts"), "hang"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  expect(await p.exited).toBe(1);
  const out = await new Response(p.stdout).text();
  expect(JSON.parse(out.trim().split("\n")[0]!).level).toBe("fatal");
});
