// "Is this IP inside one of these CIDRs?" for IPv4 and IPv6, with Node's BlockList (no parsing of
// our own). Malformed CIDRs or IPs never match: this is evidence for people, not a decision.

import { BlockList, isIP } from 'node:net';

export function cidrsContain(cidrs: readonly string[], ip: string): boolean {
  const family = isIP(ip);
  if (family === 0) return false;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [network, bits] = cidr.split('/');
    const prefix = Number(bits);
    if (!network || isIP(network) !== family || !Number.isInteger(prefix)) continue;
    try {
      list.addSubnet(network, prefix, type);
    } catch {
      continue; // a prefix out of range for the family: cannot contain anything
    }
  }
  return list.check(ip, type);
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
  if (family === 4) return ip.split('.').map((octet) => String(Number(octet))).join('.');
  return ip;
}
