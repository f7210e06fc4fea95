/**
 * Clients that vanish without a FIN (power cut, cable pulled, a NAT entry dropped) must not hold
 * connections, and maxConnections, for ever. The firmware runs as a process in a network namespace
 * of its own with a real client next to it; the client is cut off by an iptables DROP of every packet
 * the service sends it, so the firmware's keepalive probes go unanswered as they would to a host
 * that is gone. At maxConnections, the reset a new client gets says `limit` in the log and metrics,
 * apart from a failed diagnosis.
 *
 * The probes: TCP_KEEPIDLE from the gate policy's keepAliveMs; libuv (uv__tcp_keepalive, src/unix/tcp.c)
 * sets TCP_KEEPINTVL 1 s and TCP_KEEPCNT 10, and the kernel (tcp_keepalive_timer, net/ipv4/tcp_timer.c)
 * drops the connection with ETIMEDOUT once they are used up.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GateStats } from '../../firmware/gate/gate.js';
import { Netns } from '../before/netns.js';
import { describeAsRoot } from '../linux/root.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist', 'app', 'handcheck.js');
const CLIENT = fileURLToPath(new URL('./vanish-client.ts', import.meta.url));
const MODBUS = 1502;
const CONTROL = 9502;

/** The next JSON line from `child` that `match` accepts. */
function line<T>(child: ChildProcess, match: (event: T) => boolean, timeoutMs = 20_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error('no matching line from the client')), timeoutMs);
    rl.on('line', (text) => {
      const event = JSON.parse(text) as T;
      if (!match(event)) return;
      clearTimeout(timer);
      rl.close();
      resolve(event);
    });
  });
}

describeAsRoot('vanished clients', 'network namespaces and iptables', ['ip', 'iptables'], () => {
  let ns: Netns;
  let dir: string;
  let firmwareLog = '';

  const stats = async (): Promise<GateStats> => {
    const script = `fetch('http://127.0.0.1:${CONTROL}/status').then((r) => r.json()).then((s) => console.log(JSON.stringify(s.services[0].stats)))`;
    return JSON.parse(await ns.exec(process.execPath, ['-e', script])) as GateStats;
  };
  const metrics = async (): Promise<string> => ns.exec(process.execPath, ['-e', `fetch('http://127.0.0.1:${CONTROL}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`]);

  beforeAll(async () => {
    ns = await Netns.create('vanish');
    dir = await mkdtemp(join(tmpdir(), 'hc-vanish-'));
    const boards = JSON.parse(readFileSync(join(ROOT, 'boards.json'), 'utf8')) as { boards: Array<{ id: string; services: Array<{ gate?: Record<string, unknown> }> }> };
    const entry = boards.boards.find((b) => b.id === 'sim-appliance')!;
    entry.services[0]!.gate = { ...entry.services[0]!.gate, keepAliveMs: 1000, maxConnections: 3 };
    await writeFile(join(dir, 'boards.json'), JSON.stringify({ ...boards, boards: [entry] }));
    const firmware = ns.spawn(process.execPath, [CLI, 'run', '--boards', join(dir, 'boards.json'), '--listen', `modbus=127.0.0.1:${MODBUS}`, '--control', `127.0.0.1:${CONTROL}`]);
    firmware.stdout!.on('data', (chunk: Buffer) => (firmwareLog += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`firmware did not start: ${err}`)), 20_000);
      firmware.stderr!.on('data', (chunk: Buffer) => {
        err += chunk.toString();
        if (err.includes('control endpoint on')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  });

  afterAll(async () => {
    await ns?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('at maxConnections a new client is reset as `limit`, not as a fault; once the held clients vanish, keepalive frees their places', async () => {
    const client = ns.spawn(process.execPath, ['--import', 'tsx', CLIENT, '127.0.0.1', String(MODBUS), '3']);
    await line<{ event: string }>(client, (e) => e.event === 'held');
    expect((await stats()).held).toBe(3);

    const extra = line<{ event: string; how: string }>(client, (e) => e.event === 'extra');
    client.stdin!.write('more\n');
    expect((await extra).how).toBe('ECONNRESET');
    const atLimit = await stats();
    expect(atLimit).toMatchObject({ rejectedLimit: 1, reset: 0, closed: 0 });
    expect(await metrics()).toMatch(/handcheck_gate_rejected_limit_total\{service="modbus"[^}]*\} 1/);
    expect(firmwareLog).toMatch(/"action":"limit".*connection reset without diagnosis: maxConnections \(3\) reached, not a fault/);

    // The client vanishes: nothing the service sends reaches it any more, and it sends nothing.
    await ns.exec('iptables', ['-w', '-I', 'INPUT', '-p', 'tcp', '--sport', String(MODBUS), '-j', 'DROP']);
    const deadline = Date.now() + 30_000;
    let held = 3;
    while (held > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      held = (await stats()).held;
    }
    expect(held).toBe(0);
    await ns.exec('iptables', ['-w', '-D', 'INPUT', '-p', 'tcp', '--sport', String(MODBUS), '-j', 'DROP']);
    const again = line<{ event: string; how: string }>(client, (e) => e.event === 'extra');
    client.stdin!.write('more\n');
    expect((await again).how).toBe('open');
    expect((await stats()).rejectedLimit).toBe(1);
  });
});
