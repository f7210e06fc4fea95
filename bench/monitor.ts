/**
 * The monitor's quality targets: how many targets one monitor process probes at a 1 s interval and
 * what share of one core that costs (1000 loopback listeners in a separate process, so the figure
 * is the monitor's alone), and how long a fault takes to reach a hold-mode monitor through the
 * firmware's background recheck.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { Appliance } from '../dist/app/appliance.js';
import type { BoardConfig } from '../dist/config/board-config.js';
import { parseBoards, selectBoard } from '../dist/config/boards.js';
import { resolveConfig } from '../dist/monitor/config.js';
import { Monitor } from '../dist/monitor/monitor.js';

type Report = (what: string, value: string, target: string, met: boolean | undefined) => void;

const silent = pino({ level: 'silent' });
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/** `count` listeners on 127.0.0.1 in a child process; resolves with their ports. */
async function listeners(count: number): Promise<{ child: ChildProcess; ports: number[] }> {
  const script = `
    const net = require('node:net');
    const ports = [];
    let open = 0;
    for (let i = 0; i < ${count}; i++) {
      const server = net.createServer((s) => s.on('error', () => {}));
      server.listen(0, '127.0.0.1', () => {
        ports.push(server.address().port);
        if (++open === ${count}) console.log(JSON.stringify(ports));
      });
    }`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`listener process exited with ${code}`)));
  });
  return { child, ports: JSON.parse(line) as number[] };
}

async function probeRate(report: Report): Promise<void> {
  const count = 1000;
  const { child, ports } = await listeners(count);
  const monitor = Monitor.start({
    config: resolveConfig({ defaults: { intervalMs: 1000, graceMs: 300 }, targets: ports.map((port, i) => ({ name: `t${i}`, address: `127.0.0.1:${port}` })) }, 'bench'),
    logger: silent,
    alertGraceMs: 0,
  });
  let results = 0;
  let up = 0;
  monitor.onResult((_, observation) => {
    results++;
    if (observation.result === 'up') up++;
  });
  // One interval spreads the first probes over the second; one more settles the rhythm.
  await sleep(2500);
  const windowMs = 10_000;
  results = 0;
  up = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await sleep(windowMs);
  const used = process.cpuUsage(cpu);
  const seconds = (performance.now() - started) / 1000;
  const rate = results / seconds;
  const cores = (used.user + used.system) / 1e6 / seconds;
  const renderStarted = performance.now();
  const { body } = await monitor.metrics.render();
  const renderMs = performance.now() - renderStarted;
  const series = body.split('\n').filter((line) => line.startsWith('handcheck_') && line.includes('target="t0"')).length;
  await monitor.close();
  child.kill('SIGTERM');
  report(
    `monitor: ${count} targets, probe mode, 1 s interval, 300 ms grace`,
    `${rate.toFixed(0)} probes/s (${((100 * up) / Math.max(1, results)).toFixed(1)}% up) using ${(cores * 100).toFixed(1)}% of one core (${(((cores * 1e6) / rate) | 0)} us CPU per probe, ~${((rate / cores) | 0).toLocaleString('en')} probes/s per core)`,
    '>= 1000 targets/s on < 1 core',
    rate >= count * 0.98 && cores < 1 && up === results,
  );
  report(
    `monitor: /metrics with ${count} healthy targets`,
    `${(body.length / 1e6).toFixed(2)} MB (${((body.length / count) | 0).toLocaleString('en')} bytes and ${series} series per target), rendered in ${renderMs.toFixed(0)} ms`,
    '',
    undefined,
  );
}

async function holdLatency(report: Report): Promise<void> {
  const recheckMs = 100;
  const boards = parseBoards(readFileSync(new URL('../boards.json', import.meta.url), 'utf8'), 'boards.json');
  const config = structuredClone(selectBoard(boards, 'sim-appliance')) as BoardConfig;
  config.services = config.services.map((s) => ({ ...s, listen: '127.0.0.1:0', gate: { ...s.gate, recheckMs } }));
  const appliance = await Appliance.start({ config, logger: silent, control: '' });
  const port = appliance.services[0]!.port;
  const monitor = Monitor.start({
    config: resolveConfig({ targets: [{ name: 'held', address: `127.0.0.1:${port}`, mode: 'hold', graceMs: 50, intervalMs: 500 }] }, 'bench'),
    logger: silent,
    alertGraceMs: 0,
  });
  const waitFor = (predicate: () => boolean, timeoutMs: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const poll = (): void => {
        if (predicate()) resolve();
        else if (Date.now() > deadline) reject(new Error(`hold-mode bench: condition not met within ${timeoutMs} ms; target ${JSON.stringify(monitor.target('held'))}`));
        else setTimeout(poll, 5);
      };
      poll();
    });
  const latencies: number[] = [];
  try {
    for (let i = 0; i < 40; i++) {
      await waitFor(() => monitor.target('held')?.state === 'up' && monitor.target('held')!.held, 5000);
      // A random phase against the recheck timer, so the figure covers the whole recheck period.
      await sleep(Math.random() * recheckMs);
      const lost = new Promise<number>((resolve) => {
        const off = monitor.onTransition((t) => {
          if (t.to === 'lost') {
            off();
            resolve(performance.now());
          }
        });
      });
      const injectedAt = performance.now();
      appliance.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
      latencies.push((await lost) - injectedAt);
      appliance.board.sim!.faults.clearAll();
    }
  } finally {
    await monitor.close();
    await appliance.stop();
  }
  latencies.sort((a, b) => a - b);
  const p99 = quantile(latencies, 0.99);
  report(
    `monitor hold mode: fault -> lost (recheckMs ${recheckMs}, ${latencies.length} faults)`,
    `p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`,
    `<= recheckMs + 50 = ${recheckMs + 50} ms`,
    p99 <= recheckMs + 50,
  );
}

/** /metrics of 1000 healthy targets with the per-target connect histogram switched off. */
async function metricsWithoutHistogram(report: Report): Promise<void> {
  const count = 1000;
  const { child, ports } = await listeners(count);
  const monitor = Monitor.start({
    config: resolveConfig({ defaults: { intervalMs: 1000, graceMs: 300 }, connectHistogram: false, targets: ports.map((port, i) => ({ name: `t${i}`, address: `127.0.0.1:${port}` })) }, 'bench'),
    logger: silent,
    alertGraceMs: 0,
  });
  await sleep(2500);
  const started = performance.now();
  const { body } = await monitor.metrics.render();
  const renderMs = performance.now() - started;
  const series = body.split('\n').filter((line) => line.startsWith('handcheck_') && line.includes('target="t0"')).length;
  await monitor.close();
  child.kill('SIGTERM');
  report(
    `monitor: /metrics with ${count} healthy targets, connectHistogram false`,
    `${(body.length / 1e6).toFixed(2)} MB (${((body.length / count) | 0).toLocaleString('en')} bytes and ${series} series per target), rendered in ${renderMs.toFixed(0)} ms`,
    '',
    undefined,
  );
}

/** The fleet figures: probe rate, CPU and /metrics size for 1000 targets. */
export async function monitorBench(report: Report): Promise<void> {
  await probeRate(report);
  await metricsWithoutHistogram(report);
}

export async function monitorHoldBench(report: Report): Promise<void> {
  await holdLatency(report);
}
