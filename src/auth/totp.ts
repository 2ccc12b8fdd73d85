/**
 * TOTP (RFC 6238) with otplib 13: 6 digits, 30-second steps, one step of clock drift either way. Replay
 * protection: the caller passes the last accepted step and stores the one returned; a code of that step or
 * an earlier one is refused even though it is still "valid".
 */
import { generate, generateSecret, generateURI, verify } from "otplib";

export const newTotpSecret = (): string => generateSecret({ length: 20 });

export const totpUri = (secret: string, issuer: string, account: string): string =>
  generateURI({ issuer, label: account, secret });

/** Returns the accepted time step, or null when the code is wrong or was already used. */
export async function checkTotp(
  secret: string,
  code: string,
  lastStep: number | null,
  nowMs: number = Date.now(),
): Promise<number | null> {
  if (!/^\d{6}$/.test(code)) return null;
  const r = await verify({
    secret,
    token: code,
    epoch: Math.floor(nowMs / 1000),
    epochTolerance: 30,
    ...(lastStep === null ? {} : { afterTimeStep: lastStep }),
  });
  return r.valid && "timeStep" in r ? r.timeStep : null;
}

/** The current code (tests and the enrolment check). */
export const totpNow = (secret: string, nowMs: number = Date.now()): Promise<string> =>
  generate({ secret, epoch: Math.floor(nowMs / 1000) });
