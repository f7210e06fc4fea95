/**
 * Bad upstreams under load: 10,000 connections each through a proxy whose upstream is down, hangs,
 * resets the probe, or resets every spliced connection; and 10,000 through a good one that answers and
 * closes. Each connection gets a decision (a reset with the upstream's failure in the gate log, a
 * spliced connection the upstream's reset ends, or one that ends with FIN both ways), and afterwards
 * nothing is left: no held or waiting socket in the gate, no splice, no file descriptor beyond those
 * the process had before (the splice relay's duplicates and pipes included). The memory it takes is
 * measured in the bench, not here.
 */
import { readdirSync } from 'node:fs';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../helpers/wait.js';
import { type Running, startService } from './harness.js';
import { freePort } from '../helpers/ports.js';
import { resettingServer, silentServer } from './upstreams.js';

const CONNECTIONS = 10_000;
const CONCURRENCY = 64;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Opens `count` connections, `CONCURRENCY` at a time, and counts how each ended. */
async function storm(port: number, count: number, say?: string): Promise<{ reset: number; closed: number; other: string[] }> {
  const result = { reset: 0, closed: 0, other: [] as string[] };
  let started = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const socket: Socket = connect({ host: '127.0.0.1', port });
      let error: string | undefined;
      socket.on('error', (err: NodeJS.ErrnoException) => {
        error = err.code ?? err.message;
      });
      socket.resume();
      if (say !== undefined) socket.write(say);
      socket.on('close', () => {
        if (error === 'ECONNRESET') result.reset++;
        else if (error === undefined) result.closed++;
        else result.other.push(error);
        resolve();
      });
    });
  const lane = async (): Promise<void> => {
    while (started < count) {
      started++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  return result;
}

const running: Running[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  for (const close of closers.splice(0)) await close();
});

async function expectNothingLeft(r: Running, fdsBefore: number): Promise<void> {
  const { gate } = r.firmware.services[0]!;
  await until(() => gate.stats().held === 0 && gate.stats().waiting === 0 && r.proxy!.stats().open === 0, 'the gate and the proxy holding nothing');
  // Closed sockets give their descriptors back at once; a few may belong to the test's own lanes.
  await until(() => openFds() <= fdsBefore + 4, `open descriptors back near ${fdsBefore} (now ${openFds()})`);
}

describe(`proxy: ${CONNECTIONS} connections to a bad upstream`, () => {
  it('down: every one reset, ERR_UPSTREAM_DOWN in the gate log, nothing left', async () => {
    const r = await startService({ id: 'api', kind: 'proxy', listen: '127.0.0.1:0', upstream: `127.0.0.1:${await freePort()}`, connectTimeoutMs: 2000 }, 'warn');
    running.push(r);
    const fds = openFds();
    const result = await storm(r.port, CONNECTIONS);
    expect(result).toEqual({ reset: CONNECTIONS, closed: 0, other: [] });
    const resets = r.log.decisions().filter((d) => d.action === 'reset');
    expect(resets).toHaveLength(CONNECTIONS);
    expect(new Set(resets.map((d) => (d.failures as Array<{ code: string }>)[0]?.code))).toEqual(new Set(['ERR_UPSTREAM_DOWN']));
    await expectNothingLeft(r, fds);
  });

  it('slow (accepts, never answers): every one reset, ERR_UPSTREAM_TIMEOUT, nothing left here or at the upstream', async () => {
    const silent = await silentServer();
    closers.push(silent.close);
    const r = await startService({ id: 'api', kind: 'proxy', listen: '127.0.0.1:0', upstream: `127.0.0.1:${silent.port}`, connectTimeoutMs: 2000, probe: { type: 'http', path: '/health', timeoutMs: 20 } }, 'warn');
    running.push(r);
    const fds = openFds();
    const result = await storm(r.port, CONNECTIONS);
    expect(result).toEqual({ reset: CONNECTIONS, closed: 0, other: [] });
    expect(new Set(r.log.decisions().filter((d) => d.action === 'reset').map((d) => (d.failures as Array<{ code: string }>)[0]?.code))).toEqual(new Set(['ERR_UPSTREAM_TIMEOUT']));
    await until(() => silent.sockets.size === 0, 'the probes gone from the upstream');
    await expectNothingLeft(r, fds - 0);
  });

  it('resets the probe: every one reset, ERR_UPSTREAM_RESET, nothing left', async () => {
    const resetting = await resettingServer();
    closers.push(resetting.close);
    const r = await startService({ id: 'api', kind: 'proxy', listen: '127.0.0.1:0', upstream: `127.0.0.1:${resetting.port}`, connectTimeoutMs: 2000, probe: { type: 'http', path: '/' } }, 'warn');
    running.push(r);
    const fds = openFds();
    const result = await storm(r.port, CONNECTIONS);
    expect(result).toEqual({ reset: CONNECTIONS, closed: 0, other: [] });
    expect(new Set(r.log.decisions().filter((d) => d.action === 'reset').map((d) => (d.failures as Array<{ code: string }>)[0]?.code))).toEqual(new Set(['ERR_UPSTREAM_RESET']));
    await expectNothingLeft(r, fds);
  });

  it('passes a connect probe, then resets each spliced connection once spoken to: every client reset, every splice gone', async () => {
    const resetting = await resettingServer('data');
    closers.push(resetting.close);
    const r = await startService({ id: 'api', kind: 'proxy', listen: '127.0.0.1:0', upstream: `127.0.0.1:${resetting.port}`, connectTimeoutMs: 2000 }, 'warn');
    running.push(r);
    const fds = openFds();
    const result = await storm(r.port, CONNECTIONS, 'hello');
    expect(result).toEqual({ reset: CONNECTIONS, closed: 0, other: [] });
    expect(r.proxy!.stats().spliced).toBe(CONNECTIONS);
    await expectNothingLeft(r, fds);
  });
});

describe(`proxy: ${CONNECTIONS} connections to a good upstream`, () => {
  // Each connection is made, answered and closed through the relay: longer than the bad upstreams' storms.
  it('each spliced, answered and closed with FIN both ways: every splice gone, every descriptor back', { timeout: 120_000 }, async () => {
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      socket.once('data', (chunk: Buffer) => socket.end(chunk));
      // The probe's connect says nothing; its FIN is answered with ours.
      socket.once('end', () => socket.end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    const r = await startService({ id: 'api', kind: 'proxy', listen: '127.0.0.1:0', upstream: `127.0.0.1:${(server.address() as AddressInfo).port}`, connectTimeoutMs: 2000 }, 'warn');
    running.push(r);
    const fds = openFds();
    const result = await storm(r.port, CONNECTIONS, 'hello');
    expect(result).toEqual({ reset: 0, closed: CONNECTIONS, other: [] });
    expect(r.proxy!.stats()).toMatchObject({ spliced: CONNECTIONS, upstreamFailed: 0 });
    await expectNothingLeft(r, fds);
  });
});
