#!/usr/bin/env bun
/**
 * The appliance's serial console, driven by appliance/boot-test the way an operator uses it: qemu exposes the
 * guest's ttyS0 as a Unix socket (`-chardev socket,…,server=on,wait=off`), this connects to it.
 *
 *   bun appliance/console.ts login SOCKET PASSWORD NEW_PASSWORD   sign in as root with the console password of the
 *                                                                 banner, choose NEW_PASSWORD when asked (first
 *                                                                 login), leave a quiet shell (no echo, fixed prompt)
 *   bun appliance/console.ts run SOCKET TIMEOUT_S COMMAND         run COMMAND in that shell: prints its output,
 *                                                                 exits with its exit status (124 on timeout)
 *
 * The shell stays signed in between runs (the guest's getty owns the session, not this process).
 */
import type { Socket } from "bun";

class Console {
  private buf = "";
  private waiters: (() => void)[] = [];
  private constructor(private readonly sock: Socket<undefined>) {}

  static async open(path: string): Promise<Console> {
    let self: Console | null = null;
    const pending: string[] = [];
    const sock = await Bun.connect({
      unix: path,
      socket: {
        data(_s, data) {
          const text = Buffer.from(data).toString("latin1");
          if (self) self.push(text);
          else pending.push(text);
        },
      },
    });
    self = new Console(sock);
    for (const t of pending) self.push(t);
    return self;
  }

  private push(text: string): void {
    if (process.env.CONSOLE_DEBUG) process.stderr.write(`${JSON.stringify(text)}\n`);
    this.buf += text;
    for (const w of this.waiters.splice(0)) w();
  }

  send(text: string): void {
    this.sock.write(text);
  }

  /** Waits until one of the patterns matches what arrived since the last match; consumes up to its end. */
  async expect(
    patterns: RegExp[],
    timeoutMs: number,
  ): Promise<{ index: number; match: RegExpExecArray; before: string }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let best: { index: number; match: RegExpExecArray } | null = null;
      patterns.forEach((p, index) => {
        const m = p.exec(this.buf);
        if (m && (!best || m.index < best.match.index)) best = { index, match: m };
      });
      if (best) {
        const { index, match } = best as { index: number; match: RegExpExecArray };
        const before = this.buf.slice(0, match.index);
        this.buf = this.buf.slice(match.index + match[0].length);
        return { index, match, before };
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new TimeoutError(this.buf.slice(-400));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Puts text back in front of what arrived (a match looked at, not used). */
  unread(text: string): void {
    this.buf = text + this.buf;
  }

  close(): void {
    this.sock.end();
  }
}

class TimeoutError extends Error {
  constructor(readonly tail: string) {
    super("timed out");
  }
}

const PROMPT = "SMQ# ";

async function login(c: Console, password: string, newPassword: string): Promise<void> {
  // the prompt was printed before we connected: Enter asks agetty for a new one (unless one is arriving now)
  try {
    await c.expect([/login: $/m], 2_000).then((m) => c.unread(m.match[0]));
  } catch (e) {
    if (!(e instanceof TimeoutError)) throw e;
    c.send("\r");
  }
  let loginSent = 0;
  for (let step = 0; step < 16; step++) {
    const { index } = await c.expect(
      [
        /login: $/m, // 0
        /^Password: ?$/m, // 1
        /Current password: ?$|\(current\) UNIX password: ?$/m, // 2
        /^New password: ?$/m, // 3
        /Retype new password: ?$/m, // 4
        /Login incorrect/, // 5
        /[#$] $/m, // 6 a shell prompt
        /password unchanged|BAD PASSWORD|Authentication token manipulation error/i, // 7
      ],
      180_000,
    );
    if (index === 0) {
      // again when the prompt our first Enter asked for crossed the user name (a refused password says so below)
      if (++loginSent > 3) throw new Error("the console keeps asking for the login name");
      c.send("root\r");
    } else if (index === 1 || index === 2) c.send(`${password}\r`);
    else if (index === 3 || index === 4) c.send(`${newPassword}\r`);
    else if (index === 5)
      throw new Error("Login incorrect: the console password from the banner was refused");
    else if (index === 7) throw new Error("the new console password was refused by the guest");
    else if (index === 6) {
      // a quiet shell: no line editing (readline would echo), no echo, no colours, a prompt no output contains
      c.send(
        `set +o emacs +o vi; stty -echo cols 400; export TERM=dumb PAGER=cat SYSTEMD_PAGER=cat; PS1='${PROMPT}'\r`,
      );
      await c.expect([new RegExp(`${PROMPT}$`, "m")], 60_000);
      return;
    }
  }
  throw new Error("no shell after 16 login prompts");
}

async function run(c: Console, timeoutS: number, command: string): Promise<number> {
  const id = crypto.randomUUID().slice(0, 8);
  // the marker is split in the command, so that only its output (not an echo of the command) matches
  c.send(`${command}; echo "__SM""DONE_${id}:$?"\r`);
  const done = new RegExp(`__SMDONE_${id}:(\\d+)`);
  const { match, before } = await c.expect([done], timeoutS * 1000);
  // received as latin1 (one character per byte, so that patterns never see half a character): back to UTF-8
  const text = Buffer.from(before, "latin1").toString("utf8");
  process.stdout.write(text.replace(/\r/g, "").replace(new RegExp(PROMPT, "g"), ""));
  return Number(match[1]);
}

async function main(argv: string[]): Promise<number> {
  const [cmd, socket, ...rest] = argv;
  if (!socket || (cmd !== "login" && cmd !== "run")) {
    console.error(
      "usage: console.ts login SOCKET PASSWORD NEW_PASSWORD | console.ts run SOCKET TIMEOUT_S COMMAND",
    );
    return 2;
  }
  const c = await Console.open(socket);
  try {
    if (cmd === "login") {
      const [password, newPassword] = rest;
      if (!password || !newPassword) throw new Error("login needs PASSWORD and NEW_PASSWORD");
      await login(c, password, newPassword);
      return 0;
    }
    const [timeout, command] = rest;
    if (!command || !Number(timeout)) throw new Error("run needs TIMEOUT_S and COMMAND");
    return await run(c, Number(timeout), command);
  } catch (e) {
    if (e instanceof TimeoutError) {
      console.error(`appliance/console.ts ${cmd}: timed out; last console output:\n${e.tail}`);
      return 124;
    }
    console.error(`appliance/console.ts ${cmd}: ${(e as Error).message}`);
    return 1;
  } finally {
    c.close();
  }
}

process.exit(await main(process.argv.slice(2)));
