/**
 * A real load balancer as the client: HAProxy, in its own namespace, health-checks two gates with a
 * plain TCP `check` (connect, then close). The before-mode gate turns that connect into a deep check:
 * HAProxy marks it DOWN when a fault is injected and UP when it is cleared. The after-mode gate on the
 * same fault still completes every handshake, so HAProxy keeps it UP - the gap before mode closes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { installed } from '../helpers/installed.js';
import { FixtureServer, Netns, SERVER_V4, describeAsRoot, link } from './netns.js';

const BEFORE_PORT = 7401;
const AFTER_PORT = 7402;

/** `show stat` over HAProxy's admin socket: status (UP, DOWN, ...) per server of backend `gates`. */
function serverStatus(socketPath: string): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', reject);
    socket.on('end', () => {
      const [header, ...rows] = text.trim().split('\n');
      const columns = (header ?? '').replace(/^# /, '').split(',');
      const status: Record<string, string> = {};
      for (const row of rows) {
        const cells = row.split(',');
        const cell = (name: string): string => cells[columns.indexOf(name)] ?? '';
        if (cell('pxname') === 'gates' && cell('svname') !== 'BACKEND') status[cell('svname')] = cell('status');
      }
      resolve(status);
    });
    socket.end('show stat\n');
  });
}

async function until(socketPath: string, want: Record<string, string>, timeoutMs = 5000): Promise<Record<string, string>> {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, string> = {};
  while (Date.now() < deadline) {
    // The admin socket appears once HAProxy has started.
    last = await serverStatus(socketPath).catch(() => ({}));
    if (Object.entries(want).every(([name, status]) => last[name] === status)) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return last;
}

describeAsRoot('before mode: HAProxy check', () => {
  let server: Netns;
  let balancer: Netns;
  let dir: string;
  let socketPath: string;
  let before: FixtureServer;
  let after: FixtureServer;

  beforeAll(async () => {
    if (!installed('haproxy', ['-v'])) throw new Error('haproxy is not installed: install the Debian package haproxy');
    server = await Netns.create('ps');
    balancer = await Netns.create('pb');
    await link(server, balancer);
    before = new FixtureServer(server, { host: SERVER_V4, port: BEFORE_PORT, policy: { mode: 'before' } });
    after = new FixtureServer(server, { host: SERVER_V4, port: AFTER_PORT, policy: { mode: 'after' } });
    await Promise.all([before.started(), after.started()]);
    dir = await mkdtemp(join(tmpdir(), 'hc-haproxy-'));
    socketPath = join(dir, 'admin.sock');
    const config = [
      'global',
      `  stats socket ${socketPath} mode 600 level admin`,
      'defaults',
      '  mode tcp',
      '  timeout connect 1s',
      '  timeout client 5s',
      '  timeout server 5s',
      'backend gates',
      `  server before ${SERVER_V4}:${BEFORE_PORT} check inter 200 fall 1 rise 1`,
      `  server after ${SERVER_V4}:${AFTER_PORT} check inter 200 fall 1 rise 1`,
      '',
    ].join('\n');
    await writeFile(join(dir, 'haproxy.cfg'), config);
    const haproxy = balancer.spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')]);
    let stderr = '';
    haproxy.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const up = await until(socketPath, { before: 'UP', after: 'UP' }, 10_000);
    if (up.before !== 'UP' || up.after !== 'UP') throw new Error(`haproxy did not mark both gates UP: ${JSON.stringify(up)}; stderr: ${stderr}`);
  });

  afterAll(async () => {
    await server?.destroy();
    await balancer?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('marks the before-mode server DOWN while a fault is injected and UP once it is cleared; the after-mode one stays UP', async () => {
    await before.command('abnormal', 'behaviour');
    await after.command('abnormal', 'behaviour');
    const faulty = await until(socketPath, { before: 'DOWN' });
    expect(faulty.before).toBe('DOWN');
    // Several more checks of 200 ms: a completed handshake is all a TCP check asks for.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await serverStatus(socketPath)).after).toBe('UP');
    expect((await before.stats()).reset).toBeGreaterThan(0);

    await before.command('ok', 'behaviour');
    await after.command('ok', 'behaviour');
    expect(await until(socketPath, { before: 'UP', after: 'UP' })).toEqual({ before: 'UP', after: 'UP' });
  });
});
