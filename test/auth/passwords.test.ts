import { describe, expect, test } from "bun:test";
import { hashPassword, needsRehash, PASSWORD_PARAMS, verifyPassword } from "../../src/auth/passwords.ts";

describe("argon2id passwords", () => {
  test("a burst of concurrent hashes and verifications all complete, each with its own result", async () => {
    const pw = (i: number) => `passphrase number ${i} for the burst`;
    const hashes = await Promise.all(Array.from({ length: 8 }, (_, i) => hashPassword(pw(i))));
    for (const h of hashes) expect(h).toContain(`$${PASSWORD_PARAMS}$`);
    const ok = await Promise.all(hashes.map((h, i) => verifyPassword(pw(i), h)));
    const wrong = await Promise.all(hashes.map((h, i) => verifyPassword(pw(i + 1), h)));
    expect(ok).toEqual(Array(8).fill(true));
    expect(wrong).toEqual(Array(8).fill(false));
    expect(await verifyPassword(pw(0), null)).toBe(false);
    expect(await verifyPassword(pw(0), "not a hash")).toBe(false);
  });

  test("needsRehash: only a current argon2id hash is left alone", async () => {
    expect(needsRehash(await hashPassword("a current passphrase"))).toBe(false);
    const weak = await Bun.password.hash("x", { algorithm: "argon2id", memoryCost: 4096, timeCost: 1 });
    expect(needsRehash(weak)).toBe(true);
    expect(needsRehash(await Bun.password.hash("x", { algorithm: "bcrypt", cost: 4 }))).toBe(true);
    expect(needsRehash("")).toBe(true);
  });
});
