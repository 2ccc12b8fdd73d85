/** IPv4 prefixes for pools and routes (the tunnel is IPv4-only, as the config schema is). */

export interface Prefix {
  /** network address as an unsigned 32-bit number */
  network: number;
  bits: number;
}

export function parsePrefix(s: string): Prefix | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s.trim());
  if (!m) return null;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits > 32) return null;
  const ip = octets.reduce((a, o) => a * 256 + o, 0);
  return { network: (ip & mask(bits)) >>> 0, bits };
}

export function mask(bits: number): number {
  return bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  const m = mask(Math.min(a.bits, b.bits));
  return (a.network & m) >>> 0 === (b.network & m) >>> 0;
}

/** `a` lies within `b`. */
export function within(a: Prefix, b: Prefix): boolean {
  return a.bits >= b.bits && overlaps(a, b);
}

export function formatPrefix(p: Prefix): string {
  return `${ipString(p.network)}/${p.bits}`;
}

export function ipString(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
}

/** The address part of `10.200.0.1/16` (or of a bare address). */
export function hostOf(s: string): string {
  return s.split("/")[0] ?? s;
}
