import { expect, test } from "bun:test";
import { freePort } from "./ports.ts";

test("freePort never hands out the same port twice in a process (the kernel may offer one again at once)", () => {
  const ports = Array.from({ length: 300 }, () => freePort());
  expect(new Set(ports).size).toBe(ports.length);
  for (const p of ports) expect(p).toBeGreaterThan(0);
});
