/**
 * Proxy services: bulk throughput and connect latency through the proxy against the same upstream
 * direct, in alternating rounds of one run (upstream and client each in a process of their own, the
 * firmware in this one), with HAProxy's splice relay in the same rounds as a reference; bulk again
 * with the client behind a link at a Pi's Ethernet rate (a veth pair into a network namespace, shaped
 * to 1 Gbit/s each way); and what 10,000 connections to a bad upstream leave behind in memory.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type Socket, connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { promisify } from 'node:util';
import pino from 'pino';
import type { BoardConfig } from '../dist/config/board-config.js';
import { Firmware } from '../dist/firmware/firmware.js';
import { FirmwareMetrics } from '../dist/firmware/metrics.js';
import { ProxyService } from '../dist/firmware/proxy-service.js';
import { gatePolicy } from '../dist/config/gate-policy.js';
import { SimBoard } from '../dist/sim/board.js';
import { installed } from '../test/helpers/installed.js';
import { freePort } from '../test/helpers/ports.js';
import { median } from './bootstrap.js';

type Report = (what: string, value: string, target: string, met: boolean | undefined) => void;

const run = promisify(execFile);
const silent = pino({ level: 'silent' });
// USER_HZ, the unit of /proc/PID/stat's times: 100 on every architecture Linux runs a Pi on.
const USER_HZ = 100;
const here = (file: string): string => new URL(file, import.meta.url).pathname;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function startUpstream(host = '127.0.0.1'): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', here('./proxy-upstream.ts'), host], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  return { child, port: Number(line) };
}

/** Runs the bench client, in network namespace `netns` when given. */
async function client<T>(args: string[], netns?: string): Promise<T> {
  const command = [process.execPath, '--import', 'tsx', here('./proxy-client.ts'), ...args];
  const { stdout } = netns
    ? await run('ip', ['netns', 'exec', netns, ...command], { maxBuffer: 16 << 20 })
    : await run(command[0]!, command.slice(1), { maxBuffer: 16 << 20 });
  return JSON.parse(stdout) as T;
}

/** utime + stime of a live process, from /proc/PID/stat, in us. */
function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / USER_HZ;
}

interface RunningProxy {
  firmware: Firmware;
  board: SimBoard;
  port: number;
  stop(): Promise<void>;
}

async function startProxy(appliance: BoardConfig, upstream: string, host = '127.0.0.1'): Promise<RunningProxy> {
  const config: BoardConfig = {
    ...appliance,
    services: [
      {
        id: 'proxy',
        kind: 'proxy',
        listen: `${host}:0`,
        upstream,
        connectTimeoutMs: 2000,
        dependsOn: appliance.services[0]!.dependsOn,
        gate: gatePolicy({ maxAgeMs: 3_600_000 }),
      },
    ],
  };
  const board = new SimBoard(config);
  board.clock.startRealtime(1);
  const stateDir = mkdtempSync(join(tmpdir(), 'handcheck-bench-proxy-'));
  const firmware = await Firmware.start({ board, logger: silent, metrics: new FirmwareMetrics({ board: config.id }), stateDir });
  return {
    firmware,
    board,
    port: firmware.services[0]!.port,
    stop: async () => {
      await firmware.stop({ magic: true });
      board.clock.stopRealtime();
      await board.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** A connection through the proxy held open for the run, so new ones reuse its verdict (claim 5). */
function hold(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port }, () => {
      socket.write('x');
      socket.once('data', () => resolve(socket));
    });
    socket.once('error', reject);
  });
}

/** A way from the client to the upstream: straight, or through a relay whose process is `relay`. */
interface Path {
  name: string;
  host: string;
  port: number;
  /** Whose CPU is the relay's: this process (the firmware), another one, or none (direct). */
  relay?: 'self' | number;
}

interface Rounds {
  /** MiB/s per round, per path. */
  rates: Map<string, number[]>;
  /** CPU ms per MiB over all rounds, per path: the relay's, the upstream's and the client's. */
  cpu: Map<string, { relay: number; upstream: number; client: number }>;
}

/**
 * `rounds` rounds in which each path in turn carries `bytes` from the upstream to the client: the
 * paths alternate so that a change of load falls on all of them alike.
 */
async function bulkRounds(paths: Path[], upstreamPid: number, rounds: number, bytes: number, netns?: string): Promise<Rounds> {
  const rates = new Map(paths.map((path) => [path.name, [] as number[]]));
  const spent = new Map(paths.map((path) => [path.name, { relay: 0, upstream: 0, client: 0 }]));
  for (let i = 0; i < rounds; i++) {
    for (const path of paths) {
      const self = process.cpuUsage();
      const relayBefore = typeof path.relay === 'number' ? processCpuUs(path.relay) : 0;
      const upstreamBefore = processCpuUs(upstreamPid);
      const got = await client<{ bytes: number; seconds: number; cpuUs: number }>(['bulk', `${path.host}:${path.port}`, String(bytes)], netns);
      if (got.bytes !== bytes) throw new Error(`bulk read ${got.bytes} of ${bytes} bytes through ${path.name}`);
      const used = spent.get(path.name)!;
      if (path.relay === 'self') {
        const own = process.cpuUsage(self);
        used.relay += own.user + own.system;
      } else if (typeof path.relay === 'number') {
        used.relay += processCpuUs(path.relay) - relayBefore;
      }
      used.upstream += processCpuUs(upstreamPid) - upstreamBefore;
      used.client += got.cpuUs;
      rates.get(path.name)!.push(bytes / got.seconds / (1 << 20));
    }
  }
  const mib = (rounds * bytes) / (1 << 20);
  const cpu = new Map([...spent].map(([name, us]) => [name, { relay: us.relay / 1000 / mib, upstream: us.upstream / 1000 / mib, client: us.client / 1000 / mib }]));
  return { rates, cpu };
}

/** Waits until something accepts on 127.0.0.1:port; throws if `child` exits or 10 s pass first. */
async function listening(port: number, child: ChildProcess): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (child.exitCode === null && child.signalCode === null) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    if (performance.now() > deadline) throw new Error(`nothing accepts on 127.0.0.1:${port} after 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${String(child.spawnfile)} exited (${child.exitCode ?? child.signalCode}) before accepting on port ${port}`);
}

/**
 * HAProxy in TCP mode with its splice relay (`option splice-auto`) and one thread, like the proxy's
 * relay on the firmware's one event loop: the reference for what a splice proxy takes on this machine.
 */
async function startHaproxy(upstreamPort: number): Promise<{ child: ChildProcess; port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'handcheck-bench-haproxy-'));
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'global',
      '  nbthread 1',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 60s',
      '  timeout server 60s',
      '  option splice-auto',
      'listen relay',
      `  bind 127.0.0.1:${port}`,
      `  server upstream 127.0.0.1:${upstreamPort}`,
      '',
    ].join('\n'),
  );
  const child = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await listening(port, child);
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, port, stop };
}

/**
 * A client namespace behind a veth pair whose two ends are each shaped to `rate` by a token bucket:
 * the appliance's Ethernet link, so the bench asks what a client on the network gets, not what three
 * processes on one host's loopback get.
 */
function makeLink(rate: string): { netns: string; appliance: string; stop(): void } {
  const netns = `hcbench-${process.pid}`;
  const here = `hcb${process.pid}a`;
  const there = `hcb${process.pid}b`;
  const net = `10.${200 + (process.pid % 50)}.${(process.pid >> 8) % 250}`;
  const ip = (...args: string[]): void => {
    execFileSync('ip', args, { stdio: 'inherit' });
  };
  const stop = (): void => {
    try {
      execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
    } catch {
      // Not made yet, or already gone.
    }
  };
  try {
    ip('netns', 'add', netns);
    ip('link', 'add', here, 'type', 'veth', 'peer', 'name', there, 'netns', netns);
    ip('addr', 'add', `${net}.1/30`, 'dev', here);
    ip('link', 'set', here, 'up');
    ip('-n', netns, 'addr', 'add', `${net}.2/30`, 'dev', there);
    ip('-n', netns, 'link', 'set', there, 'up');
    ip('-n', netns, 'link', 'set', 'lo', 'up');
    // A bucket deep enough for whole 64 KiB GSO packets, which tbf would otherwise cut up in software.
    const shape = ['qdisc', 'add', 'dev', '', 'root', 'tbf', 'rate', rate, 'burst', '512kb', 'latency', '20ms'];
    execFileSync('tc', shape.map((arg) => arg || here), { stdio: 'inherit' });
    execFileSync('ip', ['netns', 'exec', netns, 'tc', ...shape.map((arg) => arg || there)], { stdio: 'inherit' });
  } catch (error) {
    stop();
    throw error;
  }
  return { netns, appliance: `${net}.1`, stop };
}

/** Bulk through the proxy and direct again, with the client across a link at a Pi's Ethernet rate. */
async function linkBench(report: Report, appliance: BoardConfig, rounds: number): Promise<void> {
  const link = makeLink('1gbit');
  let upstream: Awaited<ReturnType<typeof startUpstream>> | undefined;
  let proxy: RunningProxy | undefined;
  try {
    upstream = await startUpstream(link.appliance);
    proxy = await startProxy(appliance, `${link.appliance}:${upstream.port}`, link.appliance);
    const held = await hold(proxy.port, link.appliance);
    const paths: Path[] = [
      { name: 'direct', host: link.appliance, port: upstream.port },
      { name: 'proxy', host: link.appliance, port: proxy.port, relay: 'self' },
    ];
    const got = await bulkRounds(paths, upstream.child.pid!, rounds, 256 << 20, link.netns);
    held.destroy();
    const ratio = median(got.rates.get('proxy')!) / median(got.rates.get('direct')!);
    const cpu = got.cpu.get('proxy')!;
    report(
      `proxy: bulk throughput over a 1 Gbit/s link (a Pi 4's or 5's Ethernet; veth, tbf), ${rounds} alternating rounds of 256 MiB`,
      `${ratio.toFixed(2)}x (median ${mibs(got.rates.get('proxy')!)} through the proxy vs ${mibs(got.rates.get('direct')!)} direct; CPU ms/MiB: relay ${ms(cpu.relay)}, so ${((cpu.relay * median(got.rates.get('proxy')!)) / 10).toFixed(1)}% of a core at that rate, upstream ${ms(cpu.upstream)} vs ${ms(got.cpu.get('direct')!.upstream)} direct)`,
      '>= 0.8x',
      ratio >= 0.8,
    );
  } finally {
    await proxy?.stop();
    if (upstream) {
      const { child } = upstream;
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    link.stop();
  }
}

const mibs = (rates: number[]): string => `${median(rates).toFixed(0)} MiB/s`;
const ms = (n: number): string => n.toFixed(2);

export async function proxyBench(report: Report, appliance: BoardConfig): Promise<void> {
  const upstream = await startUpstream();
  const proxy = await startProxy(appliance, `127.0.0.1:${upstream.port}`);
  const held = await hold(proxy.port);
  const haproxy = installed('haproxy', ['-v']) ? await startHaproxy(upstream.port) : undefined;
  const rounds = 3;
  try {
    const paths: Path[] = [
      { name: 'direct', host: '127.0.0.1', port: upstream.port },
      { name: 'proxy', host: '127.0.0.1', port: proxy.port, relay: 'self' },
    ];
    if (haproxy) paths.push({ name: 'haproxy', host: '127.0.0.1', port: haproxy.port, relay: haproxy.child.pid! });
    const loop = await bulkRounds(paths, upstream.child.pid!, rounds, 512 << 20);
    const rate = (name: string): number => median(loop.rates.get(name)!);
    const cpu = (name: string) => loop.cpu.get(name)!;
    const ratio = rate('proxy') / rate('direct');
    const relay = proxy.firmware.services[0]!.handler instanceof ProxyService ? proxy.firmware.services[0]!.handler.stats().relay : 'unknown';
    report(
      `proxy: bulk throughput on loopback, ${rounds} alternating rounds of 512 MiB upstream -> client`,
      `${ratio.toFixed(2)}x (median ${mibs(loop.rates.get('proxy')!)} through the proxy vs ${mibs(loop.rates.get('direct')!)} direct; relay ${relay}; CPU ms/MiB: relay ${ms(cpu('proxy').relay)}, upstream ${ms(cpu('proxy').upstream)} vs ${ms(cpu('direct').upstream)} direct, client ${ms(cpu('proxy').client)} vs ${ms(cpu('direct').client)} direct)`,
      '>= 0.8x',
      ratio >= 0.8,
    );
    report(
      'proxy: HAProxy 2 (splice-auto, 1 thread) in the same rounds, for reference',
      haproxy
        ? `${(rate('haproxy') / rate('direct')).toFixed(2)}x (median ${mibs(loop.rates.get('haproxy')!)}; CPU ms/MiB: relay ${ms(cpu('haproxy').relay)}, upstream ${ms(cpu('haproxy').upstream)}, client ${ms(cpu('haproxy').client)})`
        : 'not run: haproxy is not installed (Debian package haproxy)',
      '',
      undefined,
    );
  } finally {
    await haproxy?.stop();
  }

  const count = 1000;
  const latency = { direct: [] as number[], proxied: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    latency.direct.push(...(await client<{ times: number[] }>(['latency', `127.0.0.1:${upstream.port}`, String(count)])).times);
    latency.proxied.push(...(await client<{ times: number[] }>(['latency', `127.0.0.1:${proxy.port}`, String(count)])).times);
  }
  for (const list of Object.values(latency)) list.sort((a, b) => a - b);
  report(
    `proxy: connect to first byte of an answer, ${rounds} alternating rounds of ${count} connects, reused verdict`,
    `p50 ${quantile(latency.proxied, 0.5).toFixed(3)} ms vs ${quantile(latency.direct, 0.5).toFixed(3)} ms direct, p99 ${quantile(latency.proxied, 0.99).toFixed(3)} ms vs ${quantile(latency.direct, 0.99).toFixed(3)} ms`,
    '',
    undefined,
  );
  held.destroy();
  await proxy.stop();

  if (process.getuid?.() === 0) await linkBench(report, appliance, rounds);
  else report('proxy: bulk throughput over a 1 Gbit/s link', 'not run: the link is a network namespace, which needs root', '', undefined);

  // Memory: 10,000 connections through a proxy whose upstream is down (its port closed).
  upstream.child.kill('SIGTERM');
  await new Promise((resolve) => upstream.child.once('exit', resolve));
  const down = await startProxy(appliance, `127.0.0.1:${upstream.port}`);
  // Heap after a full collection, so the figure is what is kept, not what waits for the collector.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const before = process.memoryUsage();
  let reset = 0;
  let started = 0;
  const lane = async (): Promise<void> => {
    while (started < 10_000) {
      started++;
      await new Promise<void>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: down.port });
        socket.on('error', () => {
          reset++;
        });
        socket.on('close', () => resolve());
      });
    }
  };
  await Promise.all(Array.from({ length: 64 }, lane));
  const stats = down.firmware.services[0]!.gate.stats();
  await new Promise((resolve) => setTimeout(resolve, 100));
  gc();
  const after = process.memoryUsage();
  const mb = (n: number): string => (n / (1 << 20)).toFixed(1);
  report(
    'proxy: 10,000 connections to a down upstream (every one reset, ERR_UPSTREAM_DOWN)',
    `${reset} reset, ${stats.held} held, ${stats.waiting} waiting after; heap after GC ${mb(before.heapUsed)} -> ${mb(after.heapUsed)} MB, RSS ${mb(before.rss)} -> ${mb(after.rss)} MB`,
    'nothing held, bounded memory',
    stats.held === 0 && stats.waiting === 0 && reset === 10_000,
  );
  await down.stop();
}
