import { expect, test } from "bun:test";
import { jwtSigner } from "../../src/auth/jwt.ts";

const key = crypto.getRandomValues(new Uint8Array(32));
const claims = { sub: "u1", kind: "access" as const, sid: "s1", tid: "t1", role: "viewer" };
const fails = (p: Promise<unknown>) =>
  p.then(
    () => "accepted",
    (e: Error) => e.message,
  );

test("an access token verified once is still refused once it expires, and only where its kind is accepted", async () => {
  const clock = { t: Date.now() };
  const jwt = jwtSigner(key, () => clock.t);
  const token = await jwt.sign(claims, 60);
  const first = await jwt.verify(token, "access");
  expect(first).toMatchObject(claims);
  expect(await jwt.verify(token, "access")).toEqual(first); // remembered
  expect(await fails(jwt.verify(token, "setup"))).toBe("this token cannot be used here; sign in again");
  clock.t += 61_000;
  expect(await fails(jwt.verify(token, "access"))).toBe(
    "the access token has expired; refresh it or sign in again",
  );
});

test("a token signed with another key, or altered, is refused even after the genuine one was verified", async () => {
  const jwt = jwtSigner(key);
  const token = await jwt.sign(claims, 60);
  await jwt.verify(token, "access");
  const [h, p, s] = token.split(".");
  const altered = JSON.parse(Buffer.from(p as string, "base64url").toString());
  altered.role = "superadmin";
  const forged = `${h}.${Buffer.from(JSON.stringify(altered)).toString("base64url")}.${s}`;
  expect(await fails(jwt.verify(forged, "access"))).toBe("the access token is invalid; sign in again");
  const other = jwtSigner(crypto.getRandomValues(new Uint8Array(32)));
  expect(await fails(other.verify(token, "access"))).toBe("the access token is invalid; sign in again");
});
