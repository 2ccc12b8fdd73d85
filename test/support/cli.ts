import { join } from "node:path";

export const ROOT = join(import.meta.dir, "../..");
export const BUN = process.execPath;

/** Runs the CLI from source; returns exit code and output. */
export async function runCli(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = Bun.spawn([BUN, join(ROOT, "src/main.ts"), ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ...opts.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** The message of the single fatal JSON line a failed command prints on stderr. */
export function fatalOf(stderr: string): { code: string; msg: string } {
  const line = stderr.split("\n").find((l) => l.includes('"level":"fatal"'));
  if (!line) throw new Error(`no fatal line in stderr:\n${stderr}`);
  return JSON.parse(line);
}
