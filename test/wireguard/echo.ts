/**
 * Traffic across the tunnel, run inside a test's network namespace (nsenter --net=…):
 *   bun echo.ts serve HOST PORT          TCP echo server (runs until killed)
 *   bun echo.ts probe HOST PORT MS       connects, sends a line, exits 0 when it comes back, 1 otherwise
 */
const [mode, host = "", portText = "0", msText = "2000"] = process.argv.slice(2);
const port = Number(portText);

if (mode === "serve") {
  Bun.listen({
    hostname: host,
    port,
    socket: {
      data(socket, data) {
        socket.write(data);
      },
    },
  });
  console.log("listening");
} else if (mode === "probe") {
  const timer = setTimeout(() => process.exit(1), Number(msText));
  const token = `ping-${process.pid}\n`;
  let got = "";
  try {
    await Bun.connect({
      hostname: host,
      port,
      socket: {
        open(s) {
          s.write(token);
        },
        data(s, d) {
          got += d.toString();
          if (got === token) {
            clearTimeout(timer);
            s.end();
            process.exit(0);
          }
        },
        error() {
          process.exit(1);
        },
      },
    });
  } catch {
    process.exit(1);
  }
} else {
  console.error("usage: echo.ts serve|probe HOST PORT [MS]");
  process.exit(2);
}

export {};
