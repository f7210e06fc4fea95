/**
 * `npm run bench`: the quality targets of DESIGN.md measured in one run, each against its baseline
 * where it has one, printed as a table. Figures go to BENCHMARKS.md by hand, with the machine they
 * came from.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { promisify } from 'node:util';
import pino from 'pino';
// The compiled code in dist/ is what ships and what is measured (`npm run bench` builds it first).
import { DeviceStateManager } from '../dist/firmware/device-state.js';
import { Firmware } from '../dist/firmware/firmware.js';
import { FirmwareMetrics } from '../dist/firmware/metrics.js';
import { EventLoopMonitor } from '../dist/firmware/event-loop.js';
import { Gate } from '../dist/firmware/gate/gate.js';
import { selfDiagnosis } from '../dist/firmware/self-diagnosis.js';
import { parseBoards, selectBoard } from '../dist/config/boards.js';
import { i2cAddresses } from '../dist/config/component-kinds.js';
import type { BoardConfig } from '../dist/config/board-config.js';
import { gatePolicy } from '../dist/config/gate-policy.js';
import { SimBoard } from '../dist/sim/board.js';
import { VirtualClock } from '../dist/sim/clock.js';
import { parseScenario, playScenario } from '../dist/sim/scenario.js';
import { beforeModeBench } from './before.js';
import { dashboardBench } from './dashboard.js';
import { i2cOverheadBench } from './i2c-overhead.js';
import { monitorBench, monitorHoldBench } from './monitor.js';
import { tlsBench } from './tls.js';
import { proxyBench } from './proxy.js';
import { rs485Bench } from './rs485.js';

const run = promisify(execFile);
const boards = parseBoards(readFileSync(new URL('../boards.json', import.meta.url), 'utf8'), 'boards.json');
const appliance = selectBoard(boards, 'sim-appliance');
const silent = pino({ level: 'silent' });
const rows: Array<[string, string, string, string]> = [];

function report(what: string, value: string, target: string, verdict: boolean | undefined): void {
  rows.push([what, value, target, verdict === undefined ? '' : verdict ? 'met' : 'MISSED']);
  process.stderr.write(`  ${what}: ${value}\n`);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/**
 * A one-hour scenario on the virtual clock: the watchdog kicked every second, the sensors read through
 * the device-state manager every 100 ms, every component once a second, three faults.
 */
async function scenarioSpeed(): Promise<void> {
  const board = new SimBoard(appliance, { clock: new VirtualClock(0) });
  const devices = new DeviceStateManager({ board, logger: silent, watchdogHealth: () => ({ health: 'ok', reason: '', reading: {} }) });
  const wdt = await board.watchdog();
  await wdt.open();
  playScenario(
    board,
    parseScenario({
      steps: [
        { atMs: 600_000, inject: { target: 'board-temp', kind: 'nack', durationMs: 300_000 } },
        { atMs: 1_500_000, inject: { target: 'rail-5v', kind: 'out-of-range', durationMs: 600_000 } },
        { atMs: 2_700_000, inject: { target: 'uplink-sfp', kind: 'los', durationMs: 60_000 } },
      ],
    }),
  );
  board.clock.setInterval(() => void wdt.kick(), 1000);
  const sensors = appliance.components.filter((c) => 'bus' in c).map((c) => c.id);
  let polls = 0;
  board.clock.setInterval(() => {
    polls++;
    void devices.diagnose(polls % 10 === 0 ? undefined : sensors);
  }, 100);
  const started = performance.now();
  await board.clock.runFor(3_600_000);
  const seconds = (performance.now() - started) / 1000;
  const ratio = 3600 / seconds;
  report('virtual-time scenario (1 h, sensors every 100 ms)', `${seconds.toFixed(2)} s real = ${ratio.toFixed(0)}x real time`, '>= 360x', ratio >= 360);
  if (polls !== 36_000 || board.resets !== 0) throw new Error(`scenario went wrong: ${polls} polls, ${board.resets} resets`);
}

/** `config` with every I2C bus at `clockHz`. */
function atRate(config: Readonly<BoardConfig>, clockHz: number): BoardConfig {
  return { ...config, i2c: (config.i2c ?? []).map((bus) => ({ ...bus, clockHz })) };
}

/**
 * Bytes and wire time on the I2C buses per diagnosis of the first service, on the board clock: the
 * first diagnosis after start (identities, trimming, calibration, thresholds read in full; the meter
 * never polled) and the steady state (the background refresh polled everything a second earlier).
 * Per component, and the diagnosis's own board-clock duration: the wire time, the host overhead per
 * transfer, both buses in parallel, and the meter's RS-485 round trip when it is polled.
 */
async function wireBudget(): Promise<void> {
  for (const id of ['sim-appliance', 'rpi4']) {
    for (const clockHz of [100_000, 400_000]) {
      const config = atRate(selectBoard(boards, id), clockHz);
      const board = new SimBoard(config, { clock: new VirtualClock(0) });
      const devices = new DeviceStateManager({ board, logger: silent, watchdogHealth: () => ({ health: 'ok', reason: '', reading: {} }) });
      const service = config.services[0]!;
      const diagnose = selfDiagnosis({ service: service.id, dependsOn: service.dependsOn, devices, eventLoop: new EventLoopMonitor(), clock: board.clock, app: () => ({ ok: true }) });
      const owner = new Map<string, string>();
      for (const c of config.components) if ('bus' in c) for (const { address } of i2cAddresses(c)) owner.set(`${c.bus}@${address}`, c.id);
      const measure = async (): Promise<string> => {
        for (const bus of board.i2cBuses) bus.resetTraffic();
        const started = board.clock.now();
        const verdict = await board.clock.runUntil(diagnose(new AbortController().signal), { stepMs: 0.01 });
        if (!verdict.ok) throw new Error(`healthy ${id} diagnosed abnormal: ${JSON.stringify(verdict.failures)}`);
        const took = board.clock.now() - started;
        const parts = new Map<string, { bytes: number; wireMs: number }>();
        let bytes = 0;
        for (const bus of board.i2cBuses) {
          bytes += bus.traffic.bytes;
          for (const [address, count] of bus.traffic.byAddress) {
            const part = owner.get(`${bus.id}@${address}`) ?? `${bus.id}@${address}`;
            const sum = parts.get(part) ?? { bytes: 0, wireMs: 0 };
            parts.set(part, { bytes: sum.bytes + count.bytes, wireMs: sum.wireMs + count.wireMs });
          }
        }
        const each = [...parts].map(([part, { bytes: b, wireMs }]) => `${part} ${b} B ${wireMs.toFixed(2)} ms`).join(', ');
        const buses = board.i2cBuses.map((bus) => `${bus.id} ${bus.traffic.wireMs.toFixed(2)} ms`).join(', ');
        return `${bytes} B; bus time ${buses}; diagnosis ${took.toFixed(2)} ms on the board clock (${each})`;
      };
      const first = await measure();
      await board.clock.runUntil(devices.diagnose(), { stepMs: 0.01 });
      await board.clock.advance(1000);
      const steady = await measure();
      const tookMs = Number(/diagnosis ([\d.]+) ms/.exec(steady)?.[1]);
      const khz = `${clockHz / 1000} kHz`;
      report(`${id} diagnosis of ${service.id} at ${khz}, first`, first, '', undefined);
      const targeted = id === 'sim-appliance' && clockHz === 100_000;
      report(`${id} diagnosis of ${service.id} at ${khz}, steady state`, steady, targeted ? '<= 5 ms' : '', targeted ? tookMs <= 5 : undefined);
      await devices.close();
      await board.close();
    }
  }
}

/** One full read of every component, and the self-diagnosis of the Modbus service, on a board following real time. */
async function diagnosisLatency(): Promise<void> {
  const board = new SimBoard(appliance);
  board.clock.startRealtime(1);
  const devices = new DeviceStateManager({ board, logger: silent, watchdogHealth: () => ({ health: 'ok', reason: '', reading: {} }) });
  const eventLoop = new EventLoopMonitor();
  eventLoop.start();
  const service = appliance.services[0]!;
  const diagnose = selfDiagnosis({ service: service.id, dependsOn: service.dependsOn, devices, eventLoop, clock: board.clock, app: () => ({ ok: true }) });
  await devices.diagnose();
  const full: number[] = [];
  const verdicts: number[] = [];
  const onBoard: number[] = [];
  const signal = new AbortController().signal;
  for (let i = 0; i < 2000; i++) {
    let t = performance.now();
    await devices.diagnose();
    full.push(performance.now() - t);
    t = performance.now();
    const v = board.clock.now();
    const verdict = await diagnose(signal);
    verdicts.push(performance.now() - t);
    onBoard.push(board.clock.now() - v);
    if (!verdict.ok) throw new Error(`healthy board diagnosed abnormal: ${JSON.stringify(verdict.failures)}`);
  }
  full.sort((a, b) => a - b);
  verdicts.sort((a, b) => a - b);
  onBoard.sort((a, b) => a - b);
  eventLoop.stop();
  report(`full read of every component (${appliance.components.length})`, `p50 ${quantile(full, 0.5).toFixed(3)} ms, p99 ${quantile(full, 0.99).toFixed(3)} ms`, '', undefined);
  // The board clock is the measure: it carries the wire time and, while the host keeps up, the
  // host's computing; a host that falls behind makes the clock lag and then catch up (sim/clock.ts),
  // so wall time alone can come out below the wire time it models.
  const p99 = quantile(onBoard, 0.99);
  report(
    'self-diagnosis of the Modbus service, steady state, wire time modelled (100 kHz), board following real time',
    `board clock p50 ${quantile(onBoard, 0.5).toFixed(3)} ms, p99 ${p99.toFixed(3)} ms; wall p50 ${quantile(verdicts, 0.5).toFixed(3)} ms, p99 ${quantile(verdicts, 0.99).toFixed(3)} ms`,
    'p99 <= 5 ms',
    p99 <= 5,
  );
  board.clock.stopRealtime();
  await devices.close();
  await board.close();
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

async function clientRun(port: number, total: number, concurrency: number): Promise<{ rate: number; errors: number; p50Ms: number }> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', new URL('./client.js', import.meta.url).pathname, '127.0.0.1', String(port), String(total), String(concurrency)]);
  return JSON.parse(stdout) as { rate: number; errors: number; p50Ms: number };
}

/** After mode with a reused verdict against a plain net.Server doing the same per-connection work, alternating. */
async function acceptRate(): Promise<void> {
  const drain = (socket: Socket): void => {
    socket.on('end', () => socket.end());
    socket.on('error', () => undefined);
    socket.resume();
  };
  const plain = createServer(drain);
  const plainPort = await listen(plain);
  const board = new SimBoard(appliance);
  board.clock.startRealtime(1);
  const devices = new DeviceStateManager({ board, logger: silent, watchdogHealth: () => ({ health: 'ok', reason: '', reading: {} }) });
  const service = appliance.services[0]!;
  const eventLoop = new EventLoopMonitor();
  eventLoop.start();
  const gate = new Gate({
    service: service.id,
    policy: gatePolicy({ recheckMs: 0, maxAgeMs: 3_600_000 }),
    diagnose: selfDiagnosis({ service: service.id, dependsOn: service.dependsOn, devices, eventLoop, clock: board.clock, app: () => ({ ok: true }) }),
    logger: silent,
    onConnection: drain,
  });
  const gatePort = (await gate.listen('127.0.0.1', 0)).port;
  const holder = await clientHold(gatePort);
  const ratios: number[] = [];
  let last = { plain: 0, gate: 0 };
  for (let round = 0; round < 5; round++) {
    const p = await clientRun(plainPort, 10_000, 32);
    const g = await clientRun(gatePort, 10_000, 32);
    if (p.errors || g.errors) throw new Error(`connect errors: plain ${p.errors}, gate ${g.errors}`);
    ratios.push(g.rate / p.rate);
    last = { plain: p.rate, gate: g.rate };
  }
  ratios.sort((a, b) => a - b);
  const ratio = ratios[2]!;
  const stats = gate.stats();
  report(
    'accept rate, after mode, reused verdict vs plain net.Server',
    `${ratio.toFixed(2)}x (median of 5; last round ${last.gate.toFixed(0)}/s vs ${last.plain.toFixed(0)}/s; ${stats.diagnosed} diagnoses for ${stats.accepted} connections)`,
    '>= 0.9x',
    ratio >= 0.9,
  );
  holder.destroy();
  eventLoop.stop();
  await gate.close();
  plain.close();
  board.clock.stopRealtime();
  await devices.close();
  await board.close();
}

function clientHold(port: number): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => setTimeout(() => resolve(socket), 100));
  });
}

/** Resident memory of the firmware process on the sim board, idle and after 5,000 connects. */
async function residentMemory(): Promise<void> {
  // The V8 flags the package's start script, bin and systemd unit run the firmware with.
  const child = spawn(process.execPath, ['--max-semi-space-size=1', '--optimize-for-size', new URL('../dist/app/handcheck.js', import.meta.url).pathname, 'run', '--listen', 'modbus=127.0.0.1:0', '--control', '127.0.0.1:0', '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stderr.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(text);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`firmware exited with ${code}: ${text}`)));
  });
  const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const idle = rss();
  await clientRun(port, 5000, 32);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const loaded = rss();
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  report('firmware resident memory on the sim board', `${idle.toFixed(1)} MB idle, ${loaded.toFixed(1)} MB after 5,000 connects`, '<= 80 MB', Math.max(idle, loaded) <= 80);
}

/** Read holding register 0 of unit 1 (Modbus TCP): any answer, an exception too, means the service has the connection. */
const modbusRequest = Buffer.from([0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]);

/**
 * One connect as a Modbus client sees it: `accepted` when the service answers a request, `refused`
 * when the connection is reset or closed first, and when (performance.now()) that was known. A
 * completed handshake says nothing in after mode: the kernel completes it before the gate has a
 * verdict, and a connection waiting for a diagnosis looks like an accepted one until it is reset.
 */
function connectOutcome(port: number): Promise<{ outcome: 'accepted' | 'refused'; at: number }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const settle = (outcome: 'accepted' | 'refused'): void => {
      resolve({ outcome, at: performance.now() });
      socket.destroy();
    };
    socket.on('error', () => settle('refused'));
    socket.on('close', () => settle('refused'));
    socket.on('data', () => settle('accepted'));
    socket.on('connect', () => socket.write(modbusRequest));
  });
}

/**
 * An SFP asserts RX_LOS while a connection holds a reusable verdict, on the shipped sim appliance
 * following real time: how long until a client's connect is first refused, to the moment the client
 * sees the reset. One client connects back to back, each connect started when the last one's
 * outcome was known; 40 faults.
 */
async function faultToRefusal(): Promise<void> {
  const config = { ...appliance, services: appliance.services.map((s) => ({ ...s, listen: '127.0.0.1:0' })) };
  const board = new SimBoard(config);
  board.clock.startRealtime(1);
  const stateDir = mkdtempSync(join(tmpdir(), 'handcheck-bench-'));
  const firmware = await Firmware.start({ board, logger: silent, metrics: new FirmwareMetrics({ board: config.id }), stateDir });
  const port = firmware.services[0]!.port;
  const latencies: number[] = [];
  for (let i = 0; i < 40; i++) {
    while ((await connectOutcome(port)).outcome !== 'accepted') await new Promise((resolve) => setTimeout(resolve, 20));
    // The recheck cuts the held connection at the fault: a new one holds the verdict each round.
    const holder = await clientHold(port);
    holder.on('error', () => undefined);
    const injected = performance.now();
    const fault = board.inject({ target: 'uplink-sfp', kind: 'los' });
    for (;;) {
      const { outcome, at } = await connectOutcome(port);
      if (outcome === 'refused') {
        latencies.push(at - injected);
        break;
      }
    }
    holder.destroy();
    board.faults.clear(fault.id);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  latencies.sort((a, b) => a - b);
  const worst = latencies.at(-1) ?? NaN;
  report('fault on an event-capable component (SFP RX_LOS) -> first refused connect, reusable verdict held', `p50 ${quantile(latencies, 0.5).toFixed(2)} ms, max ${worst.toFixed(2)} ms (40 faults)`, '<= 10 ms', worst <= 10);
  await firmware.stop({ magic: true });
  board.clock.stopRealtime();
  await board.close();
  rmSync(stateDir, { recursive: true, force: true });
}

const benches: Record<string, () => Promise<void>> = {
  faultToRefusal,
  scenarioSpeed,
  wireBudget,
  diagnosisLatency,
  acceptRate,
  residentMemory,
  tls: () => tlsBench(report, appliance),
  beforeMode: () => beforeModeBench(report),
  monitor: () => monitorBench(report),
  monitorHold: () => monitorHoldBench(report),
  dashboard: () => dashboardBench(report),
  proxy: () => proxyBench(report, appliance),
  rs485: () => rs485Bench(report),
  i2cOverhead: () => i2cOverheadBench(report),
};
const only = process.argv.slice(2);
for (const [name, bench] of Object.entries(benches)) {
  if (only.length > 0 && !only.includes(name)) continue;
  process.stderr.write(`${name}...\n`);
  await bench();
}

const header = ['what', 'measured', 'target', ''];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
process.stdout.write(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}\n${rows.map(line).join('\n')}\n`);
process.exit(rows.some((r) => r[3] === 'MISSED') ? 1 : 0);
