// CIDR arithmetic for the checks: does one range cover another, do two overlap. IPv4 and IPv6,
// with node:net's BlockList (no parsing of our own). Malformed ranges are reported, never guessed.

import { BlockList, isIP } from 'node:net';

export interface Cidr {
  text: string;
  network: string;
  prefix: number;
  family: 4 | 6;
}

export function parseCidr(text: string): Cidr | undefined {
  const [network, bits, extra] = text.trim().split('/');
  if (!network || bits === undefined || extra !== undefined || !/^\d+$/.test(bits)) return undefined;
  const family = isIP(network);
  const prefix = Number(bits);
  if (family === 0 || prefix > (family === 4 ? 32 : 128)) return undefined;
  return { text: text.trim(), network, prefix, family: family as 4 | 6 };
}

const familyName = (c: Cidr): 'ipv4' | 'ipv6' => (c.family === 4 ? 'ipv4' : 'ipv6');

function contains(outer: Cidr, ip: string): boolean {
  const list = new BlockList();
  list.addSubnet(outer.network, outer.prefix, familyName(outer));
  return list.check(ip, familyName(outer));
}

/** Every address of `inner` lies in `outer`. */
export function covers(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && inner.prefix >= outer.prefix && contains(outer, inner.network);
}

/** Some range in `outers` covers `inner` (ranges are not merged: 10.0.0.0/9 + 10.128.0.0/9 do not cover 10.0.0.0/8). */
export const coveredBy = (outers: readonly Cidr[], inner: Cidr): boolean => outers.some((outer) => covers(outer, inner));

/** The two ranges share an address (one covers the other, since CIDRs nest or are disjoint). */
export const overlaps = (a: Cidr, b: Cidr): boolean => covers(a, b) || covers(b, a);

/** Parsed ranges, and the texts that are not ranges. */
export function parseCidrs(texts: readonly string[]): { cidrs: Cidr[]; bad: string[] } {
  const cidrs: Cidr[] = [];
  const bad: string[] = [];
  for (const text of texts) {
    const cidr = parseCidr(text);
    if (cidr) cidrs.push(cidr);
    else bad.push(text);
  }
  return { cidrs, bad };
}
