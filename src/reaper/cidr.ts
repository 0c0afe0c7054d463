// "Is this IP inside one of these CIDRs?" for IPv4 and IPv6, with Node's BlockList (no parsing of
// our own). Malformed CIDRs or IPs never match: this is evidence for people, not a decision.

import { BlockList, isIP } from 'node:net';

export function cidrsContain(cidrs: readonly string[], ip: string): boolean {
  return cidrMatcher(cidrs)(ip);
}

/**
 * cidrsContain for many IPs against the same CIDRs: the BlockLists are built once (a BlockList per
 * IP made a pass over 20,000 pods spend most of its time building them and collecting them after).
 */
export function cidrMatcher(cidrs: readonly string[]): (ip: string) => boolean {
  const lists = { 4: new BlockList(), 6: new BlockList() } as const;
  for (const cidr of cidrs) {
    const [network, bits] = cidr.split('/');
    const prefix = Number(bits);
    const family = network ? isIP(network) : 0;
    if (family === 0 || !Number.isInteger(prefix)) continue;
    try {
      lists[family as 4 | 6].addSubnet(network!, prefix, family === 4 ? 'ipv4' : 'ipv6');
    } catch {
      continue; // a prefix out of range for the family: cannot contain anything
    }
  }
  return (ip) => {
    const family = isIP(ip);
    if (family === 0) return false;
    return lists[family as 4 | 6].check(ip, family === 4 ? 'ipv4' : 'ipv6');
  };
}

/**
 * One spelling per address, so "fd00::1", "FD00:0:0::1" and "fd00:0000::0001" compare equal:
 * IPv6 in RFC 5952 form (lower case, longest zero run compressed, as WHATWG URL serializes it),
 * IPv4 as four decimal octets. Anything that is not an IP is returned unchanged.
 */
export function canonicalIP(ip: string): string {
  const family = isIP(ip);
  if (family === 6) {
    try {
      return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
    } catch {
      return ip;
    }
  }
  // node's isIP accepts IPv4 only in canonical form (no leading zeros: "010.0.0.1" is not an IP),
  // so an IPv4 address is returned as it is; no split and join per address.
  if (family === 4) return ip;
  return ip;
}
