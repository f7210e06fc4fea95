/**
 * A before-mode service on its own, for the suites to start inside a network namespace: a Gate whose
 * Diagnose the test drives through stdin, with an application that greets every accepted connection.
 *
 *   node --import tsx fixture-server.ts '{"host":"::","port":7000,"policy":{"mode":"before"}}'
 *
 * stdin, one command a line: `ok`, `abnormal`, `throw`, `hang` (set what the next diagnoses do),
 * `delay MS` (how long each takes), `withdraw` (a component changed state: the reusable verdict is
 * withdrawn), `stats` (prints the gate's stats), `crash` (an uncaught error), `close` (gate.close(),
 * then exit 0). stdout, one JSON object a line: `{"event":"listening",...}`,
 * `{"event":"stats",...}`, `{"event":"closed"}`, or `{"event":"error","code":...}` and exit 2 when
 * the gate cannot start.
 */
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import type { GatePolicyInput } from '../../config/board-config.js';
import { gatePolicy } from '../../config/gate-policy.js';
import { type DependencyChange, Gate } from '../../firmware/gate/gate.js';
import type { Verdict } from '../../firmware/verdict.js';

interface ServerConfig {
  host: string;
  port: number;
  policy: GatePolicyInput;
  diagnosisTimeoutMs?: number;
  livenessMs?: number;
  /** Install a SIGTERM handler that closes the gate, as the firmware does. */
  gracefulSignals?: boolean;
}

type Behaviour = 'ok' | 'abnormal' | 'throw' | 'hang';

const config = JSON.parse(process.argv[2] ?? '{}') as ServerConfig;
let behaviour: Behaviour = 'ok';
let delayMs = 0;

function print(value: object): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function verdictOf(now: number, what: Behaviour): Promise<Verdict> {
  switch (what) {
    case 'ok':
      return Promise.resolve({ ok: true, failures: [], startedAt: now, durationMs: delayMs, reused: false });
    case 'abnormal':
      return Promise.resolve({
        ok: false,
        failures: [{ component: 'board-temp', code: 'ERR_HAL_NACK', reason: 'read temperatureC on i2c-1@0x48 failed: no acknowledge' }],
        startedAt: now,
        durationMs: delayMs,
        reused: false,
      });
    case 'throw':
      return Promise.reject(new Error('sensor bus exploded'));
    case 'hang':
      return new Promise<Verdict>(() => undefined);
  }
}

const logger = pino({ level: 'info' }, pino.destination(2));

async function main(): Promise<void> {
  let gate: Gate;
  let dependencyChanged: ((change: DependencyChange) => void) | undefined;
  try {
    gate = new Gate({
      service: 'fixture',
      policy: gatePolicy(config.policy),
      logger,
      diagnosisTimeoutMs: config.diagnosisTimeoutMs ?? 2000,
      closeTimeoutMs: 500,
      ...(config.livenessMs === undefined ? {} : { livenessMs: config.livenessMs }),
      watchDependencies: (onChange) => {
        dependencyChanged = onChange;
        return () => {
          dependencyChanged = undefined;
        };
      },
      diagnose: () => {
        const what = behaviour;
        const now = Date.now();
        if (delayMs === 0) return verdictOf(now, what);
        return new Promise<void>((resolve) => setTimeout(resolve, delayMs)).then(() => verdictOf(now, what));
      },
      onConnection: (socket) => {
        socket.on('error', () => undefined);
        socket.write('hello\n');
      },
    });
    const address = await gate.listen(config.host, config.port);
    print({ event: 'listening', address: address.address, port: address.port });
  } catch (err) {
    const e = err as { code?: string; message?: string; cause?: { code?: string } };
    print({ event: 'error', code: e.code, causeCode: e.cause?.code, message: e.message });
    process.exit(2);
  }

  if (config.gracefulSignals) {
    process.on('SIGTERM', () => {
      void gate.close().then(() => process.exit(0));
    });
  }

  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const [command, arg] = line.trim().split(/\s+/);
    switch (command) {
      case 'ok':
      case 'abnormal':
      case 'throw':
      case 'hang':
        behaviour = command;
        print({ event: 'behaviour', behaviour });
        break;
      case 'delay':
        delayMs = Number(arg);
        print({ event: 'delay', delayMs });
        break;
      case 'withdraw':
        dependencyChanged?.({ component: 'board-temp', reason: 'read temperatureC on i2c-1@0x48 failed: no acknowledge' });
        print({ event: 'withdrawn' });
        break;
      case 'stats':
        print({ event: 'stats', ...gate.stats() });
        break;
      case 'crash':
        setImmediate(() => {
          throw new Error('fixture crashed on purpose');
        });
        break;
      case 'close':
        void gate.close().then(() => {
          print({ event: 'closed' });
          process.exit(0);
        });
        break;
    }
  });
}

void main();
