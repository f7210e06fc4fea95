/**
 * A guard's application check against this machine's own socket tables: /proc/net/tcp and tcp6 as
 * net/ipv4/tcp_ipv4.c (get_tcp4_sock) and net/ipv6/tcp_ipv6.c (get_tcp6_sock) print them, with real
 * listening sockets made here.
 */
import { type AddressInfo, type Server, Socket, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { covers, guardCheck, listenerCheck, probeTarget, procAddress } from '../../firmware/guard-listener.js';
import { resettingServer, silentServer } from './upstreams.js';

async function listening(host: string): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

describe('guard: the daemon listening', () => {
  it('finds a socket listening on the address and port, and says so when it is gone', async () => {
    const { server, port } = await listening('127.0.0.1');
    expect(await listenerCheck({ host: '127.0.0.1', port })()).toBeUndefined();
    // A daemon on loopback alone leaves a guard of every address, or of another one, with nothing behind it.
    expect(await listenerCheck({ host: '0.0.0.0', port })()).toMatchObject({ code: 'ERR_GUARD_NOT_LISTENING' });
    expect(await listenerCheck({ host: '198.18.0.1', port })()).toMatchObject({ code: 'ERR_GUARD_NOT_LISTENING', reason: expect.stringContaining('listen on the port at 127.0.0.1 only') as string });
    await close(server);
    expect(await listenerCheck({ host: '127.0.0.1', port })()).toMatchObject({ component: 'app', code: 'ERR_GUARD_NOT_LISTENING', reason: expect.stringContaining(`no process listens on TCP port ${port} at 127.0.0.1`) as string });
  });

  it('reads IPv6 and dual-stack listeners from tcp6', async () => {
    const dual = await listening('::');
    expect(await listenerCheck({ host: '0.0.0.0', port: dual.port })()).toBeUndefined();
    expect(await listenerCheck({ host: '192.0.2.7', port: dual.port })()).toBeUndefined();
    await close(dual.server);
    const v6 = await listening('::1');
    expect(await listenerCheck({ host: '::1', port: v6.port })()).toBeUndefined();
    expect(await listenerCheck({ host: '127.0.0.1', port: v6.port })()).toMatchObject({ code: 'ERR_GUARD_NOT_LISTENING' });
    await close(v6.server);
  });

  it('decodes the address columns as the kernel prints them on a little-endian machine', () => {
    expect(procAddress('0100007F')).toBe('127.0.0.1');
    expect(procAddress('00000000000000000000000000000000')).toBe('::');
    expect(procAddress('00000000000000000000000001000000')).toBe('0:0:0:0:0:0:0:1');
    expect(covers(['0:0:0:0:0:0:0:1'], '::1')).toBe(true);
  });
});

describe('guard: the probe of the daemon', () => {
  it('connects to loopback for a daemon on every address, to the address itself otherwise', () => {
    expect(probeTarget({ host: '0.0.0.0', port: 1883 })).toEqual({ host: '127.0.0.1', port: 1883 });
    expect(probeTarget({ host: '::', port: 1883 })).toEqual({ host: '::1', port: 1883 });
    expect(probeTarget({ host: '0:0:0:0:0:0:0:0', port: 1883 })).toEqual({ host: '::1', port: 1883 });
    expect(probeTarget({ host: '198.18.0.1', port: 502 })).toEqual({ host: '198.18.0.1', port: 502 });
    expect(probeTarget({ host: '2001:db8::1', port: 502 })).toEqual({ host: '2001:db8::1', port: 502 });
  });

  it('asks the daemon only once it listens; a silent one fails with the probe code as component app, over the socket given', async () => {
    const silent = await silentServer();
    const families: number[] = [];
    const socket = (family: 4 | 6): Socket => {
      families.push(family);
      return new Socket();
    };
    try {
      const check = guardCheck({ host: '127.0.0.1', port: silent.port }, { config: { type: 'send-expect', send: 'PING\r\n', expect: '+PONG', timeoutMs: 50 }, socket });
      expect(await check(new AbortController().signal)).toEqual({
        component: 'app',
        code: 'ERR_UPSTREAM_TIMEOUT',
        reason: `daemon 127.0.0.1:${silent.port}: no answer to send "PING\\r\\n", expect "+PONG" within 50 ms`,
      });
      expect(families).toEqual([4]);
    } finally {
      await silent.close();
    }
    // Gone: the listener says so, and no probe is made.
    const check = guardCheck({ host: '127.0.0.1', port: silent.port }, { config: { type: 'connect' }, socket });
    expect(await check(new AbortController().signal)).toMatchObject({ component: 'app', code: 'ERR_GUARD_NOT_LISTENING' });
    expect(families).toEqual([4]);
  });

  it('a daemon that answers wrong or resets the probe fails with that code, as component app', async () => {
    const probe = { type: 'send-expect', send: 'PING\r\n', expect: '+PONG', timeoutMs: 5000 } as const;
    const wrong = createServer((client) => {
      client.on('error', () => undefined);
      client.once('data', () => client.end('-ERR unknown command\r\n'));
    });
    await new Promise<void>((resolve) => wrong.listen(0, '127.0.0.1', resolve));
    const resetting = await resettingServer('data');
    try {
      const answered = guardCheck({ host: '127.0.0.1', port: (wrong.address() as AddressInfo).port }, { config: probe, socket: () => new Socket() });
      expect(await answered(new AbortController().signal)).toMatchObject({ component: 'app', code: 'ERR_UPSTREAM_ANSWER' });
      const reset = guardCheck({ host: '127.0.0.1', port: resetting.port }, { config: probe, socket: () => new Socket() });
      expect(await reset(new AbortController().signal)).toMatchObject({ component: 'app', code: 'ERR_UPSTREAM_RESET' });
    } finally {
      await close(wrong);
      await resetting.close();
    }
  });
});
