import { expect, test } from "bun:test";
import { slots } from "./slots.ts";

test("at most `size` calls run at once; the others start in arrival order; a failure frees its slot", async () => {
  const s = slots(2);
  const started: number[] = [];
  const gates = new Map<number, () => void>();
  const call = (i: number, fail = false) =>
    s.run(async () => {
      started.push(i);
      await new Promise<void>((resolve) => gates.set(i, resolve));
      if (fail) throw new Error(`call ${i} failed`);
      return i;
    });
  const calls = [call(0, true), call(1), call(2), call(3)];
  await Bun.sleep(1);
  expect(started).toEqual([0, 1]);
  expect([s.busy, s.waiting]).toEqual([2, 2]);
  gates.get(0)?.();
  expect(await calls[0]?.catch((e: Error) => e.message)).toBe("call 0 failed");
  await Bun.sleep(1);
  expect(started).toEqual([0, 1, 2]);
  gates.get(2)?.();
  gates.get(1)?.();
  expect(await calls[2]).toBe(2);
  await Bun.sleep(1);
  gates.get(3)?.();
  expect(await Promise.all(calls.slice(1))).toEqual([1, 2, 3]);
  expect([s.busy, s.waiting]).toEqual([0, 0]);
});
