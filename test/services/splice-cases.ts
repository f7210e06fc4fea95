/**
 * What a proxy must do with the bytes of an admitted connection, whatever carries them: the splice(2)
 * relay (test/services/proxy.test.ts) or the stream pipes it falls back to without its addon
 * (test/services/proxy-stream.test.ts). Node servers stand in for the upstream where the test must
 * control it byte by byte: bytes sent before the verdict, half-close both ways, resets both ways,
 * backpressure, the gate's idle timeout.
 */
import { createHash } from 'node:crypto';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { until } from '../helpers/wait.js';
import { type Running, startService } from './harness.js';

function proxyTo(port: number, extra: Record<string, unknown> = {}): Parameters<typeof startService>[0] {
  return { id: 'api', kind: 'proxy', listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`, connectTimeoutMs: 2000, ...extra };
}

/**
 * A Node upstream the test drives: every accepted socket - the probe's connect included - is handed to
 * `onSocket`. Closing it destroys what is still open (a half-open socket would hold server.close()).
 */
async function nodeUpstream(onSocket: (socket: Socket) => void): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function received(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => socket.once('end', () => resolve(Buffer.concat(chunks))));
}

/** The cases, inside a describe; `relay` is what the proxy's stats must say carries the bytes. */
export function spliceCases(relay: 'splice' | 'stream'): void {
  const running: Running[] = [];
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const r of running.splice(0)) await r.stop();
    for (const close of closers.splice(0)) await close();
  });

  async function start(...args: Parameters<typeof startService>): Promise<Running> {
    const r = await startService(...args);
    running.push(r);
    expect(r.proxy!.stats().relay).toBe(relay);
    return r;
  }

  it('keeps the bytes a client sent before its verdict, and passes its FIN on while the answer still flows back', async () => {
    const upstream = await nodeUpstream((socket) => {
      void received(socket).then((data) => socket.end(`got ${data.length} bytes: ${data.toString()}`));
    });
    closers.push(upstream.close);
    const { port } = await start(proxyTo(upstream.port));
    // Written at once and half-closed: the proxy sees these bytes and the FIN before it has a verdict.
    const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    client.end('early bytes');
    expect((await received(client)).toString()).toBe('got 11 bytes: early bytes');
  });

  it("passes the upstream's FIN on while the client's bytes still flow to it", async () => {
    let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
    const upstream = await nodeUpstream((socket) => {
      upstreamGot = received(socket);
      socket.end('banner, then no more from me');
    });
    closers.push(upstream.close);
    const { port, proxy } = await start(proxyTo(upstream.port));
    const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    expect((await received(client)).toString()).toBe('banner, then no more from me');
    client.end('after your FIN');
    await new Promise((resolve) => client.once('close', resolve));
    expect((await upstreamGot).toString()).toBe('after your FIN');
    await until(() => proxy!.stats().open === 0, 'the splice gone');
  });

  it('an upstream reset resets the client, and a client reset resets the upstream', async () => {
    const upstreamErrors: string[] = [];
    let upstreamHeard = '';
    let mode: 'reset-client' | 'wait' = 'reset-client';
    const upstream = await nodeUpstream((socket) => {
      socket.on('error', (err: NodeJS.ErrnoException) => upstreamErrors.push(err.code ?? err.message));
      if (mode === 'reset-client') socket.once('data', () => socket.resetAndDestroy());
      // Reading, so that the kernel's report of the peer's RST reaches the socket.
      else socket.on('data', (chunk: Buffer) => (upstreamHeard += chunk.toString()));
    });
    closers.push(upstream.close);
    const { port, proxy } = await start(proxyTo(upstream.port));

    const first = connect({ host: '127.0.0.1', port });
    first.write('trigger');
    expect(await new Promise<string | undefined>((resolve) => first.once('error', (err: NodeJS.ErrnoException) => resolve(err.code)))).toBe('ECONNRESET');

    mode = 'wait';
    const second = connect({ host: '127.0.0.1', port });
    await new Promise((resolve) => second.once('connect', resolve));
    second.write('hello');
    // The splice is made through to the upstream once the client's bytes arrive there.
    await until(() => upstreamHeard === 'hello', 'the second splice carrying bytes');
    second.resetAndDestroy();
    await until(() => upstreamErrors.includes('ECONNRESET'), 'the upstream seeing the reset');
    await until(() => proxy!.stats().open === 0, 'both splices gone');
  });

  it('an upstream that refuses the spliced connection after an ok verdict: the client is reset, the gate log says upstream-failed', async () => {
    const upstream = await nodeUpstream((socket) => {
      socket.once('data', () => {
        // The probe's ping: the listener goes away before the pong, so the splice that follows is refused.
        upstream.server.close();
        socket.end('pong');
      });
    });
    const { port, log, proxy } = await start(proxyTo(upstream.port, { probe: { type: 'send-expect', send: 'ping', expect: 'pong' } }));
    const client = connect({ host: '127.0.0.1', port });
    expect(await new Promise<string | undefined>((resolve) => client.once('error', (err: NodeJS.ErrnoException) => resolve(err.code)))).toBe('ECONNRESET');
    expect(log.lines()).toContainEqual(expect.objectContaining({ action: 'upstream-failed', code: 'ERR_UPSTREAM_DOWN', upstream: `127.0.0.1:${upstream.port}` }));
    expect(proxy!.stats()).toMatchObject({ spliced: 1, upstreamFailed: 1 });
    await until(() => proxy!.stats().open === 0, 'the failed splice gone');
  });

  it("closes a spliced connection with FIN after the gate's idleTimeoutMs without traffic, and not while bytes flow", async () => {
    const upstream = await nodeUpstream((socket) => socket.pipe(socket));
    closers.push(upstream.close);
    // The timeout must outlast the slowest round trip, which a loaded machine stretches: measured here
    // first, through a proxy without one, and the timeout set well above it.
    const measuring = await echoClient((await start(proxyTo(upstream.port))).port);
    let slowestMs = 0;
    for (let i = 0; i < 20; i++) {
      const sent = Date.now();
      expect(await measuring.roundTrip('poll')).toBe('poll');
      slowestMs = Math.max(slowestMs, Date.now() - sent);
    }
    measuring.socket.destroy();
    const idleTimeoutMs = Math.max(300, 20 * slowestMs);
    const { port, log } = await start(proxyTo(upstream.port, { gate: { idleTimeoutMs } }));
    const client = await echoClient(port);
    const ended = new Promise((resolve) => client.socket.once('end', resolve));
    const opened = Date.now();
    while (Date.now() - opened < 2.5 * idleTimeoutMs) expect(await client.roundTrip('poll')).toBe('poll');
    expect(client.socket.readableEnded).toBe(false);
    await ended;
    expect(log.decisions()).toContainEqual(expect.objectContaining({ action: 'idle-close' }));
  });

  it('a recheck that finds a fault resets the spliced client, and the upstream with it', async () => {
    const upstreamErrors: string[] = [];
    let heard = '';
    const upstream = await nodeUpstream((socket) => {
      socket.on('error', (err: NodeJS.ErrnoException) => upstreamErrors.push(err.code ?? err.message));
      socket.on('data', (chunk: Buffer) => (heard += chunk.toString()));
    });
    closers.push(upstream.close);
    const { port, board, proxy, log } = await start(proxyTo(upstream.port, { gate: { recheckMs: 1000 } }));
    const client = connect({ host: '127.0.0.1', port });
    const reset = new Promise<string | undefined>((resolve) => client.once('error', (err: NodeJS.ErrnoException) => resolve(err.code)));
    client.write('held');
    await until(() => heard === 'held', 'the spliced connection carrying bytes');

    board.inject({ target: 'power-good', kind: 'stuck-low' });
    await board.clock.advance(1000);

    expect(await reset).toBe('ECONNRESET');
    await until(() => upstreamErrors.includes('ECONNRESET'), 'the upstream seeing the reset');
    await until(() => proxy!.stats().open === 0, 'the splice gone');
    expect(log.decisions()).toContainEqual(expect.objectContaining({ action: 'recheck-reset' }));
  });

  it('honours backpressure: with the upstream not reading, the proxy buffers a bounded amount and the client is held back; then every byte arrives', async () => {
    const hash = createHash('sha256');
    let upstreamBytes = 0;
    const accepted: Socket[] = [];
    let done: () => void = () => undefined;
    const upstreamDone = new Promise<void>((resolve) => {
      done = resolve;
    });
    const upstream = await nodeUpstream((socket) => {
      accepted.push(socket);
      socket.pause();
      let mine = 0;
      socket.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        mine += chunk.length;
        upstreamBytes += chunk.length;
      });
      socket.on('end', () => {
        socket.end();
        // The probe's connect carries nothing; the spliced connection is the one with the bytes.
        if (mine > 0) done();
      });
    });
    closers.push(upstream.close);
    const { port, proxy } = await start(proxyTo(upstream.port));
    const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    client.on('data', () => undefined);
    await new Promise((resolve) => client.once('connect', resolve));

    const sent = createHash('sha256');
    const chunk = Buffer.alloc(64 << 10);
    let written = 0;
    let maxBuffered = 0;
    // Until the client's own buffer holds 4 MiB: every buffer between it and the paused upstream is full.
    while (client.writableLength < 4 << 20) {
      chunk.writeUInt32BE(written >>> 0, 0);
      sent.update(chunk);
      client.write(Buffer.from(chunk));
      written += chunk.length;
      maxBuffered = Math.max(maxBuffered, proxy!.stats().buffered);
      expect(written, 'bytes written before the client was held back').toBeLessThan(256 << 20);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(upstreamBytes).toBe(0);
    // The proxy's own buffers stay near one highWaterMark plus one read, whatever the client sends.
    expect(maxBuffered).toBeLessThanOrEqual(256 << 10);
    client.end();
    for (const socket of accepted) socket.resume();
    await upstreamDone;
    expect(upstreamBytes).toBe(written);
    expect(hash.digest('hex')).toBe(sent.digest('hex'));
  });
}

/** A client of an echoing upstream: one round trip at a time. */
function echoClient(port: number): Promise<{ socket: Socket; roundTrip(text: string): Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.setNoDelay(true);
      resolve({
        socket,
        // A connection that ends instead of answering fails the round trip rather than leaving it waiting.
        roundTrip: (text) =>
          new Promise((answered, failed) => {
            const ended = (): void => failed(new Error(`the connection ended before the answer to ${text}`));
            socket.once('end', ended);
            socket.once('data', (chunk: Buffer) => {
              socket.off('end', ended);
              answered(chunk.toString());
            });
            socket.write(text);
          }),
      });
    });
    socket.once('error', reject);
  });
}
