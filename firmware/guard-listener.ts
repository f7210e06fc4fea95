/**
 * The application-layer part of a guard's self-diagnosis: does a process listen on the guarded port?
 * Read from the kernel's socket tables (/proc/net/tcp and tcp6, the network namespace of this
 * process), which costs the daemon nothing. A listening socket is all it shows: the kernel completes
 * handshakes on it whether or not the daemon calls accept(), so a hung daemon passes. The entry's
 * optional probe (upstream-probe.ts: an HTTP status, a Modbus read, a send/expect pair) asks the
 * daemon itself, over a socket whose SYN carries the bypass mark so the guard's own queue lets it by
 * (bypass-socket.ts); the daemon sees that connection in its log at every diagnosis.
 */
import { readFile } from 'node:fs/promises';
import { type Socket, isIP } from 'node:net';
import { endianness } from 'node:os';
import type { ProbeConfig } from '../config/board-config.js';
import type { HostPort } from '../config/host-port.js';
import { upstreamProbe } from './upstream-probe.js';
import type { Failure } from './verdict.js';

export const ERR_GUARD_NOT_LISTENING = 'ERR_GUARD_NOT_LISTENING';

/** Failure.component of what the check finds: the process behind the guarded port. */
export const GUARDED = 'app';

/** TCP_LISTEN in include/net/tcp_states.h, as /proc/net/tcp prints it (`st`). */
const TCP_LISTEN = '0A';

/**
 * An address column of /proc/net/tcp{,6} (net/ipv4/tcp_ipv4.c get_tcp4_sock, net/ipv6/tcp_ipv6.c
 * get_tcp6_sock): 32-bit words printed with %08X in host byte order, so each word's bytes are
 * reversed on a little-endian machine (every Raspberry Pi and x86).
 */
export function procAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((word) => {
    const b = (word.match(/.{2}/g) ?? []).map((pair) => parseInt(pair, 16));
    return endianness() === 'LE' ? b.reverse() : b;
  });
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  const text = groups.join(':');
  if (text.startsWith('0:0:0:0:0:ffff:')) {
    return `::ffff:${bytes.slice(12).join('.')}`;
  }
  return text === '0:0:0:0:0:0:0:0' ? '::' : text;
}

function sameHost(listening: string, wanted: string): boolean {
  if (listening === wanted) return true;
  const canonical = (address: string): string => (isIP(address) === 6 ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address);
  return canonical(listening) === canonical(wanted) || listening === `::ffff:${wanted}`;
}

/**
 * Whether `listeners` (local addresses of listening sockets on the port) take connections to `host`.
 * A guard of every address (0.0.0.0, ::) needs a listener on every address: a daemon bound to
 * loopback alone would refuse the network's clients whatever the guard says.
 */
export function covers(listeners: readonly string[], host: string): boolean {
  return listeners.some((address) => {
    if (address === '::') return true;
    if (address === '0.0.0.0') return isIP(host) === 4;
    return host !== '0.0.0.0' && host !== '::' && sameHost(address, host);
  });
}

/** The local addresses of the sockets listening on `port` in one /proc/net/tcp{,6} text. */
export function listenersOn(table: string, port: number): string[] {
  const found: string[] = [];
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    if (fields[3] !== TCP_LISTEN || local === undefined) continue;
    const [address, portHex] = local.split(':');
    if (address !== undefined && portHex !== undefined && parseInt(portHex, 16) === port) found.push(procAddress(address));
  }
  return found;
}

async function readTable(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    // A kernel without IPv6 has no tcp6 table: nothing listens there.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/** Resolves undefined while a socket listens on `target`, a Failure naming the port otherwise. */
export function listenerCheck(target: HostPort, procNet = '/proc/net'): () => Promise<Failure | undefined> {
  return async () => {
    const tables = await Promise.all([readTable(`${procNet}/tcp`), readTable(`${procNet}/tcp6`)]);
    const listeners = tables.flatMap((table) => listenersOn(table, target.port));
    if (covers(listeners, target.host)) return undefined;
    const elsewhere = listeners.length > 0 ? `; sockets listen on the port at ${listeners.join(', ')} only` : '';
    return {
      component: GUARDED,
      code: ERR_GUARD_NOT_LISTENING,
      reason: `no process listens on TCP port ${target.port} at ${target.host} in this network namespace (${procNet}/tcp, tcp6)${elsewhere}`,
    };
  };
}

/** Where the probe of a daemon bound to `listen` connects: loopback for a daemon on every address. */
export function probeTarget(listen: HostPort): HostPort {
  if (listen.host === '0.0.0.0') return { host: '127.0.0.1', port: listen.port };
  if (isIP(listen.host) === 6 && /^[0:]+$/.test(listen.host)) return { host: '::1', port: listen.port };
  return listen;
}

export interface GuardProbe {
  config: ProbeConfig;
  /** The unconnected socket of each probe, its SYN marked to skip the guard's queue (bypass-socket.ts). */
  socket: (family: 4 | 6) => Socket;
}

/**
 * A guard's application check: the listener, then, when the entry has a probe, the daemon asked at
 * probeTarget(listen). A probe failure is component `app` with the probe's ERR_UPSTREAM_* code.
 */
export function guardCheck(listen: HostPort, probe: GuardProbe | undefined, procNet?: string): (signal: AbortSignal) => Promise<Failure | undefined> {
  const listening = listenerCheck(listen, procNet);
  if (probe === undefined) return listening;
  const asked = upstreamProbe(probeTarget(listen), probe.config, { component: GUARDED, name: 'daemon', socket: probe.socket });
  return async (signal) => (await listening()) ?? asked(signal);
}
