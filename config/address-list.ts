/**
 * Client address rules as boards.json writes them (`writeAllow`): an IP address (`10.0.0.9`, `fd00::9`)
 * or a subnet in CIDR notation (`10.0.0.0/24`, `::/0`), and the test of a client address against a
 * list of them.
 */
import { BlockList, isIP } from 'node:net';

export interface AddressRule {
  address: string;
  /** Prefix length; 32 or 128 for a single address. */
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** `value` as an address or CIDR subnet, or undefined when it is neither. */
export function parseAddressRule(value: string): AddressRule | undefined {
  const slash = value.indexOf('/');
  const address = slash === -1 ? value : value.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const bits = version === 4 ? 32 : 128;
  if (slash === -1) return { address, prefix: bits, family: version === 4 ? 'ipv4' : 'ipv6' };
  const prefixText = value.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > bits) return undefined;
  return { address, prefix: Number(prefixText), family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Normalises `::ffff:10.0.0.1` to `10.0.0.1`, so IPv4 rules hold for clients of a dual-stack socket. */
export function plainAddress(address: string): string {
  return address.toLowerCase().startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * A test of client addresses against rules that `parseAddressRule` accepted (the boards loader has
 * checked them); a rule it does not accept matches nothing.
 */
export function addressMatcher(rules: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const rule of rules.map(parseAddressRule)) {
    if (rule) list.addSubnet(rule.address, rule.prefix, rule.family);
  }
  return (address) => {
    const plain = plainAddress(address);
    const version = isIP(plain);
    return version !== 0 && list.check(plain, version === 4 ? 'ipv4' : 'ipv6');
  };
}

/** Whether a bound address only takes connections from this machine (127.0.0.0/8, ::1). */
export function isLoopback(address: string): boolean {
  const plain = plainAddress(address);
  return plain === '::1' || (isIP(plain) === 4 && plain.startsWith('127.'));
}
