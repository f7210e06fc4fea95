import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Appliance } from '../../app/appliance.js';
import type { BoardConfig } from '../../config/board-config.js';
import { gatePolicy } from '../../config/gate-policy.js';
import type { Alert } from '../../monitor/alerts.js';
import { type ConfigFile, resolveConfig } from '../../monitor/config.js';
import { Monitor, type MonitorOptions } from '../../monitor/monitor.js';
import type { TargetState, Transition } from '../../monitor/state.js';
import { silent } from '../helpers/log.js';
import { cli } from '../helpers/processes.js';
import { until } from '../helpers/wait.js';

/** The sim appliance with a second Modbus service that depends on no component: the port to ask why and read the boot record on. */
export function withQueryPort(config: BoardConfig): BoardConfig {
  const modbus = config.services[0]!;
  return { ...config, services: [modbus, { ...modbus, id: 'modbus-query', listen: '127.0.0.1:0', dependsOn: [], gate: gatePolicy({ ...modbus.gate, recheckMs: 0 }) }] };
}

/**
 * One watchdog reset of a sim appliance: its watchdog starved until the board resets (the firmware
 * stalls, as `watchdog starve` models), then the firmware back up on the new boot.
 */
export async function rebootByWatchdog(appliance: Appliance): Promise<void> {
  const sim = appliance.board.sim!;
  const [resets, restarts] = [sim.resets, appliance.restartCount];
  const starve = sim.faults.inject({ target: 'watchdog', kind: 'starve' });
  await until(() => sim.resets > resets, `watchdog reset ${resets + 1}`, 30_000);
  sim.faults.clear(starve.id);
  await until(() => appliance.restartCount > restarts, `the firmware back after watchdog reset ${resets + 1}`, 30_000);
}

/**
 * The `rebootLoop.windowMs` of tests that make a loop of two rebootByWatchdog calls: the loop is seen
 * only if both reboots fall within one window, and each takes a few seconds on a loaded machine.
 */
export const twoRebootsWindowMs = 30_000;

/**
 * Puts a target watched with `rebootLoop.count` 2 in a reboot loop: once it is up and its boot record
 * read (the baseline), two watchdog resets of its appliance. Resolves with the transition into the loop.
 */
export async function loopByTwoReboots(monitor: Monitor, target: string, appliance: Appliance): Promise<Transition> {
  await reach(monitor, target, 'up', 30_000);
  await until(() => monitor.target(target)!.bootCount !== undefined, 'the first read of the boot record', 30_000);
  const looping = nextTransition(monitor, target, 'reboot-loop', 120_000);
  await rebootByWatchdog(appliance);
  await rebootByWatchdog(appliance);
  return looping;
}

/** Starts a monitor on a config document (validated as a file would be). */
export function startMonitor(document: ConfigFile, options: Partial<MonitorOptions> = {}): Monitor {
  return Monitor.start({ config: resolveConfig(document, 'test'), logger: silent, alertGraceMs: 0, ...options });
}

/**
 * Which transition to wait for: into a state, out of one into another (a reboot's row, its state
 * unchanged, does not leave it), or any (undefined).
 */
export type Wanted = TargetState | { leaving: TargetState } | undefined;

function matches(transition: Transition, to: Wanted): boolean {
  if (to === undefined) return true;
  if (typeof to === 'string') return transition.to === to;
  return transition.from === to.leaving && transition.to !== to.leaving;
}

/**
 * Resolves with the next transition of `target` that `to` describes, rejecting with what the target
 * was doing when `timeoutMs` passes first.
 */
export function nextTransition(monitor: Monitor, target: string, to: Wanted, timeoutMs = 5000): Promise<Transition> {
  const what = to === undefined ? 'turn anything' : typeof to === 'string' ? `turn ${to}` : `leave ${to.leaving}`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${target} did not ${what} within ${timeoutMs} ms; it is ${JSON.stringify(monitor.target(target))}`));
    }, timeoutMs);
    const off = monitor.onTransition((transition) => {
      if (transition.target !== target || !matches(transition, to)) return;
      clearTimeout(timer);
      off();
      resolve(transition);
    });
  });
}

/** The target's state now, or once it reaches `to` (resolving with that transition). */
export async function reach(monitor: Monitor, target: string, to: TargetState, timeoutMs = 5000): Promise<Transition | undefined> {
  if (monitor.target(target)?.state === to) return undefined;
  return nextTransition(monitor, target, to, timeoutMs);
}

export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hc-monitor-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Resolves with the results of the next `count` probes of `target`, in order. */
export function nextResults(monitor: Monitor, target: string, count: number, timeoutMs = 10_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const results: string[] = [];
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${target}: ${results.length} of ${count} probe results within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = monitor.onResult((config, outcome) => {
      if (config.name !== target) return;
      results.push(outcome.result);
      if (results.length < count) return;
      clearTimeout(timer);
      off();
      resolve(results);
    });
  });
}

export interface ReceivedRequest {
  body: unknown;
  headers: IncomingHttpHeaders;
  /** Resolves when the monitor gave up on the request (its connection closed before an answer). */
  abandoned: Promise<void>;
}

/**
 * An HTTP receiver on loopback that records every request and answers as `answer` says: a status, a
 * status to come (a promise), or `hang` (never answers). `next(predicate)` waits for a request that
 * matches, by event.
 */
export class Receiver {
  readonly requests: ReceivedRequest[] = [];
  answer: (body: unknown) => number | Promise<number> | 'hang' = () => 200;
  private readonly server: Server;
  private readonly waiters = new Set<{ match: (r: ReceivedRequest) => boolean; resolve: (r: ReceivedRequest) => void }>();
  port = 0;

  constructor() {
    this.server = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => {
        const body = JSON.parse(text) as unknown;
        const abandoned = new Promise<void>((resolve) => res.once('close', () => !res.writableFinished && resolve()));
        const request: ReceivedRequest = { body, headers: req.headers, abandoned };
        this.requests.push(request);
        const answer = this.answer(body);
        if (typeof answer === 'number') res.writeHead(answer).end();
        else if (answer !== 'hang') void answer.then((status) => res.writeHead(status).end());
        for (const waiter of this.waiters) {
          if (!waiter.match(request)) continue;
          this.waiters.delete(waiter);
          waiter.resolve(request);
        }
      });
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** Bodies received so far, as alerts. */
  get alerts(): Alert[] {
    return this.requests.map((r) => r.body as Alert);
  }

  /** The first request from now on (or already received, with `seen`) that matches. */
  next(match: (alert: Alert) => boolean, timeoutMs = 10_000, seen = false): Promise<ReceivedRequest> {
    const earlier = seen ? this.requests.find((r) => match(r.body as Alert)) : undefined;
    if (earlier) return Promise.resolve(earlier);
    return new Promise((resolve, reject) => {
      const waiter = {
        match: (r: ReceivedRequest) => match(r.body as Alert),
        resolve: (r: ReceivedRequest) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`no matching request within ${timeoutMs} ms; received ${JSON.stringify(this.alerts.map((a) => [a.target, a.status]))}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export interface MonitorProcess {
  child: ChildProcessWithoutNullStreams;
  /** Its `--json` lines on stdout, parsed. */
  lines: Array<Record<string, unknown>>;
  stderr: () => string;
  stop: () => Promise<void>;
}

/** `handcheck monitor --json` as a process, as users run it. */
export function monitorProcess(args: string[]): MonitorProcess {
  const child = spawn(process.execPath, [cli, 'monitor', '--json', ...args]);
  const lines: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  return {
    child,
    lines,
    stderr: () => stderr,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
