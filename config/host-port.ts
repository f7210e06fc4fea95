/**
 * `HOST:PORT` as every address in handcheck's configuration and command line is written: a name or
 * IPv4 address, or an IPv6 address in brackets (`[::1]:502`), and a port 0-65535.
 */
import { isIP } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

/** The host and port, or undefined when `value` is not `HOST:PORT`; port 0 (any free port) only with `allowPortZero`. */
export function parseHostPort(value: string, options: { allowPortZero?: boolean } = {}): HostPort | undefined {
  const match = /^(?:\[([^\]\s]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < (options.allowPortZero ? 0 : 1) || port > 65535) return undefined;
  const host = match[1] ?? match[2]!;
  if (match[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}

/** The inverse of parseHostPort: IPv6 hosts in brackets, so the port cannot be read as part of the address. */
export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
