/**
 * Proxy services over real sockets: an ok verdict splices the client to the upstream, an abnormal one
 * resets it. With real clients in front of real servers - mosquitto_pub / mosquitto_sub
 * (mosquitto-clients) through the proxy to mosquitto, curl to nginx - and with Node servers where the
 * test must control the upstream byte by byte: bytes sent before the verdict, half-close both ways,
 * resets both ways, backpressure.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spliceAddon } from '../../firmware/splice-relay.js';
import { describeWhen } from '../helpers/requirements.js';
import { type Running, startService } from './harness.js';
import { freePort } from '../helpers/ports.js';
import { spliceCases } from './splice-cases.js';
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

const spliceMissing = spliceAddon() ? undefined : 'the splice relay addon is not built (npm run build:native)';

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

describeWhen(spliceMissing, 'proxy: the splice(2) relay', () => spliceCases('splice'));
