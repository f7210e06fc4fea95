/**
 * What the monitor sees across a real link: a network namespace joined to this one by a veth pair
 * (addresses from the benchmarking range 198.19.77.0/24), with iptables rules inside it that drop or
 * reject, a listener whose traffic is cut while a connection is held, and the firmware in before mode.
 * Root only: skipped with the reason otherwise, failed when HANDCHECK_REQUIRE_ROOT=1 (CI).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Monitor } from '../../monitor/monitor.js';
import { cli } from '../helpers/processes.js';
import { describeWhen, notRoot, requireOrSkip } from '../helpers/requirements.js';
import { nextTransition, reach, startMonitor } from './helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
const ADDON = join(ROOT, 'native', 'build', 'Release', 'handcheck_nfqueue.node');
const NS = `hcmon-${process.pid}`;
const HOST_IF = `hcm${process.pid % 100_000}a`;
const NS_IF = `hcm${process.pid % 100_000}b`;
const HOST_V4 = '198.19.77.1';
const NS_V4 = '198.19.77.2';
const PORTS = { blackhole: 7001, unreachable: 7002, nothing: 7003, listener: 7004, modbus: 1502, control: 9502 };

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}
const inNs = (command: string, args: string[]): Promise<string> => run('ip', ['netns', 'exec', NS, command, ...args]);

/** Starts a process inside the namespace and resolves once its stderr or stdout matches `ready`. */
function spawnInNs(args: string[], ready: RegExp): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn('ip', ['netns', 'exec', NS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not get ready: ${output}`)), 15_000);
    const seen = (chunk: Buffer): void => {
      output += chunk.toString();
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve({ child, output: () => output });
      }
    };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited with ${code}: ${output}`));
    });
  });
}

describeWhen(notRoot('the namespace suite (ip netns, veth, iptables)'), 'the monitor across a veth link into a namespace', () => {
  const children: ChildProcess[] = [];
  let monitor: Monitor | undefined;
  beforeAll(async () => {
    await run('ip', ['netns', 'add', NS]);
    await inNs('ip', ['link', 'set', 'lo', 'up']);
    await run('ip', ['link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF, 'netns', NS]);
    await run('ip', ['addr', 'add', `${HOST_V4}/24`, 'dev', HOST_IF]);
    await run('ip', ['link', 'set', HOST_IF, 'up']);
    await inNs('ip', ['addr', 'add', `${NS_V4}/24`, 'dev', NS_IF]);
    await inNs('ip', ['link', 'set', NS_IF, 'up']);
    await inNs('iptables', ['-w', '-A', 'INPUT', '-p', 'tcp', '--dport', String(PORTS.blackhole), '-j', 'DROP']);
    await inNs('iptables', ['-w', '-A', 'INPUT', '-p', 'tcp', '--dport', String(PORTS.unreachable), '-j', 'REJECT', '--reject-with', 'icmp-host-unreachable']);
  });
  afterAll(async () => {
    await monitor?.close();
    for (const child of children) child.kill('SIGKILL');
    // Deleting the namespace takes its end of the veth pair, and with it ours.
    await run('ip', ['netns', 'del', NS]).catch(() => undefined);
    await run('ip', ['link', 'del', HOST_IF]).catch(() => undefined);
  });

  it('a blackholed port -> timeout, an ICMP host-unreachable -> unreachable, a closed port -> refused', async () => {
    monitor = startMonitor({
      defaults: { intervalMs: 1000, graceMs: 100, connectTimeoutMs: 500 },
      targets: [
        { name: 'blackhole', address: `${NS_V4}:${PORTS.blackhole}` },
        { name: 'unreachable', address: `${NS_V4}:${PORTS.unreachable}` },
        { name: 'nothing', address: `${NS_V4}:${PORTS.nothing}` },
      ],
    });
    await Promise.all([reach(monitor, 'blackhole', 'timeout', 3000), reach(monitor, 'unreachable', 'unreachable', 3000), reach(monitor, 'nothing', 'refused', 3000)]);
    expect(monitor.target('blackhole')).toMatchObject({ reason: 'no SYN/ACK within 500 ms', last: { errno: 'ETIMEDOUT' } });
    expect(monitor.target('blackhole')!.last!.connectMs).toBeGreaterThanOrEqual(499);
    expect(monitor.target('unreachable')).toMatchObject({ reason: 'EHOSTUNREACH: no route to the host or network' });
    expect(monitor.target('nothing')).toMatchObject({ reason: 'RST to the SYN' });
    await monitor.close();
    monitor = undefined;
  });

  it('hold mode: traffic cut under a held connection -> keepalive gives up -> lost, then timeout', async () => {
    const server = `require('node:net').createServer((s) => s.on('error', () => {})).listen(${PORTS.listener}, '${NS_V4}', () => console.log('ready'))`;
    const listener = await spawnInNs(['node', '-e', server], /ready/);
    children.push(listener.child);
    monitor = startMonitor({ targets: [{ name: 'held', address: `${NS_V4}:${PORTS.listener}`, mode: 'hold', keepAliveMs: 1000, graceMs: 100, connectTimeoutMs: 500, intervalMs: 1000 }] });
    await reach(monitor, 'held', 'up', 3000);
    const lost = nextTransition(monitor, 'held', 'lost', 20_000);
    const cutAt = Date.now();
    await inNs('iptables', ['-w', '-I', 'INPUT', '-p', 'tcp', '--dport', String(PORTS.listener), '-j', 'DROP']);
    const transition = await lost;
    expect(transition.reason).toMatch(/^keepalive gave up \(no answer to 10 probes\) after [\d.]+ s held$/);
    // 1 s idle, then ten probes a second apart (libuv's keepalive settings).
    expect(transition.at - cutAt).toBeGreaterThan(9_000);
    expect(transition.at - cutAt).toBeLessThan(14_000);
    await reach(monitor, 'held', 'timeout', 3000);
    await monitor.close();
    monitor = undefined;
  }, 30_000);

  const beforeMissing = existsSync(ADDON) ? undefined : `the NFQUEUE addon is not built at ${ADDON} ("npm run build:native")`;

  it('the firmware in before mode: a fault -> refused (RST without a SYN/ACK), cleared -> up', async (ctx) => {
    requireOrSkip(ctx, beforeMissing);
    // Off loopback, the control endpoint insists on a token.
    const token = `token-for-test-${process.pid}`;
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const firmware = await spawnInNs(
      [process.execPath, cli, 'run', '--listen', `modbus=${NS_V4}:${PORTS.modbus}`, '--before', 'modbus', '--control', `${NS_V4}:${PORTS.control}`, '--control-token', token, '--log-level', 'warn'],
      /control endpoint on http/,
    );
    children.push(firmware.child);
    expect(firmware.output()).toMatch(/gate before/);
    monitor = startMonitor({ targets: [{ name: 'before', address: `${NS_V4}:${PORTS.modbus}`, intervalMs: 100, graceMs: 60 }] });
    await reach(monitor, 'before', 'up', 3000);
    const control = `http://${NS_V4}:${PORTS.control}/faults`;
    const down = nextTransition(monitor, 'before', undefined, 3000);
    const injected = await fetch(control, { method: 'POST', headers, body: JSON.stringify({ target: 'board-temp', kind: 'nack' }) });
    expect(injected.status).toBeLessThan(300);
    expect(await down).toMatchObject({ from: 'up', to: 'refused', reason: 'RST to the SYN' });
    const up = nextTransition(monitor, 'before', 'up', 5000);
    expect((await fetch(control, { method: 'DELETE', headers })).status).toBeLessThan(300);
    await up;
    await monitor.close();
    monitor = undefined;
  });
});
