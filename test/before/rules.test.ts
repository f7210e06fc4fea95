/**
 * The parts of before mode that need no root: which rules a bound address calls for, how tagged rules
 * are told apart in `iptables -S` output, what the nftables table says, and how CAP_NET_ADMIN is read
 * from /proc.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ruleTargets } from '../../firmware/gate/before.js';
import { iptablesVariantFromEnv, taggedRules } from '../../firmware/gate/iptables.js';
import { hasTable, tableScript } from '../../firmware/gate/nftables.js';
import { hasNetAdmin } from '../../firmware/gate/nfqueue.js';

describe('ruleTargets', () => {
  it('covers both families for a dual-stack server on ::, without a destination', () => {
    expect(ruleTargets({ address: '::', family: 'IPv6', port: 502 })).toEqual([
      { family: 4, destination: undefined },
      { family: 6, destination: undefined },
    ]);
  });

  it('covers IPv4 only for 0.0.0.0, and one family with the destination for a specific address', () => {
    expect(ruleTargets({ address: '0.0.0.0', family: 'IPv4', port: 502 })).toEqual([{ family: 4, destination: undefined }]);
    expect(ruleTargets({ address: '192.0.2.7', family: 'IPv4', port: 502 })).toEqual([{ family: 4, destination: '192.0.2.7' }]);
    expect(ruleTargets({ address: '2001:db8::7', family: 'IPv6', port: 502 })).toEqual([{ family: 6, destination: '2001:db8::7' }]);
  });
});

describe('taggedRules', () => {
  const listing = [
    '-P INPUT ACCEPT',
    '-A INPUT -p tcp -m tcp --dport 502 --tcp-flags FIN,SYN,RST,ACK SYN -m mark --mark 0x1/0x1 -m comment --comment "handcheck:502:modbus" -j REJECT --reject-with tcp-reset',
    '-A INPUT -p tcp -m tcp --dport 502 --tcp-flags FIN,SYN,RST,ACK SYN -m mark ! --mark 0x1/0x1 -m comment --comment handcheck:502:modbus -j NFQUEUE --queue-num 0 --queue-bypass',
    '-A INPUT -p tcp -m tcp --dport 5020 -m comment --comment "handcheck:5020:other" -j NFQUEUE --queue-num 1',
    '-A INPUT -p tcp -m tcp --dport 502 -m comment --comment "ssh and modbus" -j ACCEPT',
    '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT',
  ].join('\n');

  it('finds the rules of one port, quoted comment or not, and no other port or comment', () => {
    const rules = taggedRules(listing, 502);
    expect(rules).toHaveLength(2);
    expect(rules[0]).toContain('-j REJECT');
    expect(rules[1]).toContain('-j NFQUEUE --queue-num 0');
    expect(taggedRules(listing, 5020)).toHaveLength(1);
    expect(taggedRules(listing, 22)).toEqual([]);
  });
});

describe('tableScript', () => {
  const spec = { port: 502, comment: 'handcheck:502:modbus', bypassBit: 0x2, targets: [{ family: 4 as const, destination: '192.0.2.7' }, { family: 6 as const, destination: undefined }] };

  it('replaces the port table in one script, marking SYNs past the queue when liveness lapsed or a verdict is held', () => {
    const script = tableScript({ ...spec, failClosed: false });
    expect(script.split('\n').slice(0, 3)).toEqual(['add table inet handcheck_502', 'delete table inet handcheck_502', 'table inet handcheck_502 {']);
    expect(script).toContain('set alive { type inet_service; flags timeout; }');
    expect(script).toContain('set reusable { type inet_service; flags timeout; }');
    expect(script).toContain('type filter hook input priority filter - 10; policy accept;');
    const syn = 'tcp dport 502 tcp flags & (fin | syn | rst | ack) == syn';
    expect(script).toContain(`meta nfproto ipv4 ip daddr 192.0.2.7 ${syn} tcp dport != @alive meta mark set meta mark | 0x2`);
    expect(script).toContain(`meta nfproto ipv4 ip daddr 192.0.2.7 ${syn} tcp dport @reusable meta mark set meta mark | 0x2`);
    expect(script).toContain(`meta nfproto ipv6 ${syn} tcp dport != @alive meta mark set meta mark | 0x2`);
    expect(script).toContain(`meta nfproto ipv6 ${syn} tcp dport @reusable meta mark set meta mark | 0x2`);
  });

  it('leaves out the liveness rule with failClosed: a stopped firmware keeps SYNs in the queue', () => {
    const script = tableScript({ ...spec, failClosed: true });
    expect(script).not.toContain('@alive');
    expect(script).toContain('@reusable');
  });
});

describe('hasTable', () => {
  it('finds the port table in `nft list tables` output and no other port', () => {
    const listing = 'table inet filter\ntable inet handcheck_5020\ntable ip nat\n';
    expect(hasTable(listing, 5020)).toBe(true);
    expect(hasTable(listing, 502)).toBe(false);
  });
});

describe('hasNetAdmin', () => {
  it('reads bit 12 of CapEff', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hc-caps-'));
    try {
      const path = join(dir, 'status');
      await writeFile(path, 'Name:\tnode\nCapEff:\t000001ffffffffff\n');
      expect(hasNetAdmin(path)).toBe(true);
      await writeFile(path, 'Name:\tnode\nCapEff:\t000001ffffffefff\n');
      expect(hasNetAdmin(path)).toBe(false);
      await writeFile(path, 'Name:\tnode\n');
      expect(hasNetAdmin(path)).toBeUndefined();
      expect(hasNetAdmin(join(dir, 'missing'))).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('iptablesVariantFromEnv', () => {
  it('takes nft or legacy from HANDCHECK_IPTABLES and the system default otherwise', () => {
    expect(iptablesVariantFromEnv({ HANDCHECK_IPTABLES: 'legacy' })).toBe('legacy');
    expect(iptablesVariantFromEnv({ HANDCHECK_IPTABLES: 'nft' })).toBe('nft');
    expect(iptablesVariantFromEnv({ HANDCHECK_IPTABLES: 'bogus' })).toBe('default');
    expect(iptablesVariantFromEnv({})).toBe('default');
  });
});
