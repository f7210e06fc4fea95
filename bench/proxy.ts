/**
 * Proxy services: bulk throughput and connect latency through the proxy against the same upstream
 * direct, in alternating rounds of one run (upstream and client each in a process of their own, the
 * firmware in this one); and what 10,000 connections to a bad upstream leave behind in memory.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
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

type Report = (what: string, value: string, target: string, met: boolean | undefined) => void;

const run = promisify(execFile);
const silent = pino({ level: 'silent' });
const here = (file: string): string => new URL(file, import.meta.url).pathname;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function median(values: number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

async function startUpstream(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', here('./proxy-upstream.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  return { child, port: Number(line) };
}

async function client<T>(args: string[]): Promise<T> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', here('./proxy-client.ts'), ...args], { maxBuffer: 16 << 20 });
  return JSON.parse(stdout) as T;
}

interface RunningProxy {
  firmware: Firmware;
  board: SimBoard;
  port: number;
  stop(): Promise<void>;
}

async function startProxy(appliance: BoardConfig, upstreamPort: number): Promise<RunningProxy> {
  const config: BoardConfig = {
    ...appliance,
    services: [
      {
        id: 'proxy',
        kind: 'proxy',
        listen: '127.0.0.1:0',
        upstream: `127.0.0.1:${upstreamPort}`,
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
function hold(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.write('x');
      socket.once('data', () => resolve(socket));
    });
    socket.once('error', reject);
  });
}

export async function proxyBench(report: Report, appliance: BoardConfig): Promise<void> {
  const upstream = await startUpstream();
  const proxy = await startProxy(appliance, upstream.port);
  const held = await hold(proxy.port);
  const bytes = 512 << 20;
  const rounds = 3;
  const direct: number[] = [];
  const proxied: number[] = [];
  // CPU of this process (the firmware, the proxy in it) per MiB proxied: what the proxy takes from the
  // cores it shares with the processes it serves, and less at the mercy of the load than a rate.
  let proxyCpuUs = 0;
  for (let i = 0; i < rounds; i++) {
    for (const [port, into] of [
      [upstream.port, direct],
      [proxy.port, proxied],
    ] as const) {
      const cpu = process.cpuUsage();
      const got = await client<{ bytes: number; seconds: number }>(['bulk', String(port), String(bytes)]);
      if (into === proxied) {
        const used = process.cpuUsage(cpu);
        proxyCpuUs += used.user + used.system;
      }
      if (got.bytes !== bytes) throw new Error(`bulk read ${got.bytes} of ${bytes} bytes through port ${port}`);
      into.push(bytes / got.seconds / (1 << 20));
    }
  }
  const ratio = median(proxied) / median(direct);
  const cpuMsPerMiB = proxyCpuUs / 1000 / ((rounds * bytes) / (1 << 20));
  const relay = proxy.firmware.services[0]!.handler instanceof ProxyService ? proxy.firmware.services[0]!.handler.stats().relay : 'unknown';
  report(
    `proxy: bulk throughput, ${rounds} alternating rounds of 512 MiB upstream -> client`,
    `${ratio.toFixed(2)}x (median ${median(proxied).toFixed(0)} MiB/s through the proxy vs ${median(direct).toFixed(0)} MiB/s direct; relay ${relay}, proxy CPU ${cpuMsPerMiB.toFixed(2)} ms/MiB)`,
    '>= 0.8x',
    ratio >= 0.8,
  );

  const count = 1000;
  const latency = { direct: [] as number[], proxied: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    latency.direct.push(...(await client<{ times: number[] }>(['latency', String(upstream.port), String(count)])).times);
    latency.proxied.push(...(await client<{ times: number[] }>(['latency', String(proxy.port), String(count)])).times);
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

  // Memory: 10,000 connections through a proxy whose upstream is down (its port closed).
  upstream.child.kill('SIGTERM');
  await new Promise((resolve) => upstream.child.once('exit', resolve));
  const down = await startProxy(appliance, upstream.port);
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
