// cidrMatcher (built once, used for every pod IP of a node) answers what cidrsContain answers,
// for both families and for malformed input; canonicalIP keeps its one-spelling-per-address rule.
import { describe, expect, it } from 'vitest';
import { canonicalIP, cidrMatcher, cidrsContain } from '../../src/reaper/cidr.js';

describe('cidrMatcher', () => {
  const cidrs = ['10.64.0.0/24', 'fd00:10::/64', 'not-a-cidr', '10.0.0.0/40', '10.65.0.0/16'];
  const ips = ['10.64.0.7', '10.64.1.7', '10.65.200.1', 'fd00:10::1', 'FD00:10:0:0::2', 'fd00:11::1', 'nonsense', '', '010.64.0.7'];

  it('agrees with cidrsContain on every IP, both families, malformed entries ignored', () => {
    const contains = cidrMatcher(cidrs);
    for (const ip of ips) expect(contains(ip), ip).toBe(cidrsContain(cidrs, ip));
    expect(ips.filter((ip) => contains(ip))).toEqual(['10.64.0.7', '10.65.200.1', 'fd00:10::1', 'FD00:10:0:0::2']);
  });

  it('matches nothing without CIDRs', () => {
    expect(cidrMatcher([])('10.64.0.7')).toBe(false);
  });
});

describe('canonicalIP', () => {
  it('keeps IPv4 as it is, compresses IPv6, leaves non-IPs alone', () => {
    expect(canonicalIP('10.64.0.7')).toBe('10.64.0.7');
    expect(canonicalIP('FD00:0:0::1')).toBe('fd00::1');
    expect(canonicalIP('fd00:0000::0001')).toBe('fd00::1');
    expect(canonicalIP('010.0.0.1')).toBe('010.0.0.1'); // not an IP for node: unchanged, as before
  });
});
