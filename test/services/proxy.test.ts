/**
 * Proxy services over real sockets: an ok verdict splices the client to the upstream, an abnormal one
 * resets it. With real clients in front of real servers - mosquitto_pub / mosquitto_sub
 * (mosquitto-clients) through the proxy to mosquitto, curl to nginx - and with Node servers where the
 * test must control the upstream byte by byte: bytes sent before the verdict, half-close both ways,
 * resets both ways, backpressure.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { describeWhen } from '../helpers/requirements.js';
import { until } from '../helpers/wait.js';
import { type Running, startService } from './harness.js';
import { freePort } from '../helpers/ports.js';
import { type Upstream, missing, startMosquitto, startNginx } from './upstreams.js';

function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { encoding: 'buffer', timeout: 30_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: stdout.toString('latin1'), stderr: stderr.toString() });
    });
  });
}

function proxyTo(port: number, extra: Record<string, unknown> = {}): Parameters<typeof startService>[0] {
  return { id: 'api', kind: 'proxy', listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`, connectTimeoutMs: 2000, ...extra };
}

const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
});

async function start(...args: Parameters<typeof startService>): Promise<Running> {
  const r = await startService(...args);
  running.push(r);
  return r;
}

describeWhen(missing('mosquitto_pub', 'mosquitto-clients') ?? missing('mosquitto', 'mosquitto'), 'proxy in front of mosquitto, with mosquitto_pub and mosquitto_sub', () => {
  let broker: Upstream;
  beforeAll(async () => {
    broker = await startMosquitto();
  });
  afterAll(() => broker?.stop());

  it('healthy: a retained message published through the proxy is read back through it', async () => {
    const { port } = await start(proxyTo(broker.port, { probe: { type: 'send-expect', send: '100e00044d5154540402000a00026863', expect: '20020000', encoding: 'hex' } }));
    const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-t', 'handcheck/proxy', '-r', '-m', 'through the proxy']);
    expect(pub).toMatchObject({ code: 0 });
    const sub = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-t', 'handcheck/proxy', '-C', '1', '-W', '10']);
    expect(sub).toMatchObject({ code: 0, stdout: 'through the proxy\n' });
  });

  it('a fault on a dependency: the client is reset and the gate log names the component', async () => {
    const { port, board, log } = await start(proxyTo(broker.port));
    board.inject({ target: 'power-good', kind: 'stuck-low' });
    const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-t', 'handcheck/proxy', '-m', 'x']);
    expect(pub.code).not.toBe(0);
    expect(log.decisions()).toContainEqual(expect.objectContaining({ action: 'reset', service: 'api', failures: [expect.objectContaining({ component: 'power-good' })] }));
  });
});

describeWhen(missing('curl', 'curl') ?? missing('nginx', 'nginx-light'), 'proxy in front of nginx, with curl', () => {
  let nginx: Upstream & { big: Buffer };
  beforeAll(async () => {
    nginx = await startNginx({ bigBytes: 4 << 20 });
  });
  afterAll(() => nginx?.stop());

  it('healthy: 4 MiB arrive byte for byte; the HTTP probe of /health decides', async () => {
    const { port, log } = await start(proxyTo(nginx.port, { probe: { type: 'http', path: '/health' } }));
    const got = await run('curl', ['-sS', '--fail', `http://127.0.0.1:${port}/big.bin`]);
    expect(got.code).toBe(0);
    expect(createHash('sha256').update(Buffer.from(got.stdout, 'latin1')).digest('hex')).toBe(createHash('sha256').update(nginx.big).digest('hex'));
    expect(log.decisions().filter((d) => d.action !== 'accept')).toEqual([]);
  });

  it('the probe path failing resets the client: curl sees the reset, the gate log says the status', async () => {
    const { port, log } = await start(proxyTo(nginx.port, { probe: { type: 'http', path: '/broken' } }));
    const got = await run('curl', ['-sS', `http://127.0.0.1:${port}/health`]);
    // 56: CURLE_RECV_ERROR, "Connection reset by peer".
    expect(got).toMatchObject({ code: 56, stderr: expect.stringContaining('reset') as string });
    expect(log.decisions()).toContainEqual(
      expect.objectContaining({ action: 'reset', failures: [expect.objectContaining({ component: 'upstream', code: 'ERR_UPSTREAM_ANSWER', reason: expect.stringContaining('status 503') as string })] }),
    );
  });
});

describe('proxy: an upstream that is down', () => {
  it('resets the client with ERR_UPSTREAM_DOWN in the gate log', async () => {
    const { port, log } = await start(proxyTo(await freePort()));
    const socket = connect({ host: '127.0.0.1', port });
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => socket.once('error', resolve));
    expect(err.code).toBe('ECONNRESET');
    expect(log.decisions()).toContainEqual(expect.objectContaining({ action: 'reset', failures: [expect.objectContaining({ code: 'ERR_UPSTREAM_DOWN' })] }));
  });
});

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

describe('proxy: the splice', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

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
});
