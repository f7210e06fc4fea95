/**
 * Shared pieces of the gate suites: a Diagnose the test drives, gates on 127.0.0.1 port 0 that are
 * closed after each test, and loopback clients whose fate (data, FIN, RST) is recorded.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { Gate, type GateDecision, type GateOptions } from '../../firmware/gate/gate.js';
import type { Diagnose, Failure, Verdict } from '../../firmware/verdict.js';
import type { GatePolicyInput } from '../../config/board-config.js';
import { gatePolicy } from '../../config/gate-policy.js';
import { type LogSink, logSink } from '../helpers/log.js';
import { until } from '../helpers/wait.js';

export const HOST = '127.0.0.1';

export function okVerdict(startedAt = Date.now(), durationMs = 1): Verdict {
  return { ok: true, failures: [], startedAt, durationMs, reused: false };
}

export const sensorFailure: Failure = {
  component: 'board-temp',
  code: 'ERR_HAL_NACK',
  reason: 'read temperatureC on i2c-1@0x48 failed: no acknowledge',
};

export function badVerdict(failure: Failure = sensorFailure, startedAt = Date.now()): Verdict {
  return { ok: false, failures: [failure], startedAt, durationMs: 3, reused: false };
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A Diagnose whose every call runs `behaviour` (default: resolve ok at once). Records the calls and
 * the signal each got.
 */
export class FakeDiagnosis {
  calls = 0;
  signals: AbortSignal[] = [];
  behaviour: (signal: AbortSignal) => Promise<Verdict> = () => Promise.resolve(okVerdict());

  readonly diagnose: Diagnose = (signal) => {
    this.calls++;
    this.signals.push(signal);
    return this.behaviour(signal);
  };

  healthy(): void {
    this.behaviour = () => Promise.resolve(okVerdict());
  }

  failing(failure: Failure = sensorFailure): void {
    this.behaviour = () => Promise.resolve(badVerdict(failure));
  }

  /** Every call waits for the test to settle the returned deferred. */
  gated(): Deferred<Verdict> {
    const gate = deferred<Verdict>();
    this.behaviour = () => gate.promise;
    return gate;
  }
}

export interface Started {
  gate: Gate;
  port: number;
  diagnosis: FakeDiagnosis;
  sink: LogSink;
  decisions: GateDecision[];
  /** Server-side sockets handed to onConnection, in order. */
  served: Socket[];
}

export type GateSetup = Partial<Omit<GateOptions, 'diagnose' | 'logger' | 'policy'>> & { diagnosis?: FakeDiagnosis; policy?: GatePolicyInput };

/** Opens and tracks gates and clients; `cleanup()` in afterEach closes everything. */
export class Rig {
  private readonly gates: Gate[] = [];
  private readonly clients: Socket[] = [];

  /** Starts a gate on 127.0.0.1 port 0. The default application echoes what it reads. */
  async start(setup: GateSetup = {}): Promise<Started> {
    const diagnosis = setup.diagnosis ?? new FakeDiagnosis();
    const sink = logSink();
    const served: Socket[] = [];
    const onConnection =
      setup.onConnection ??
      ((socket: Socket) => {
        socket.on('error', () => undefined);
        socket.pipe(socket);
      });
    const gate = new Gate({
      service: 'modbus',
      ...setup,
      policy: gatePolicy(setup.policy),
      diagnose: diagnosis.diagnose,
      logger: sink.logger,
      onConnection: (socket) => {
        served.push(socket);
        onConnection(socket);
      },
    });
    this.gates.push(gate);
    const decisions: GateDecision[] = [];
    gate.on('decision', (decision) => decisions.push(decision));
    const { port } = await gate.listen(HOST, 0);
    return { gate, port, diagnosis, sink, decisions, served };
  }

  /** Connects to 127.0.0.1:port and records the client's fate. */
  connect(port: number, options: { allowHalfOpen?: boolean } = {}): Client {
    const socket = netConnect({ host: HOST, port, allowHalfOpen: options.allowHalfOpen ?? false });
    this.clients.push(socket);
    return new Client(socket);
  }

  async cleanup(): Promise<void> {
    for (const client of this.clients) client.destroy();
    await Promise.all(this.gates.map((gate) => gate.close()));
    this.gates.length = 0;
    this.clients.length = 0;
  }
}

export interface Fate {
  /** Bytes received before the connection ended. */
  data: Buffer;
  /** True when the server's FIN arrived ('end'). */
  ended: boolean;
  /** Error code the client saw (ECONNRESET for an RST), undefined for a clean close. */
  error: string | undefined;
}

export class Client {
  readonly socket: Socket;
  readonly connected: Promise<void>;
  /** Settles when the client socket has closed. */
  readonly fate: Promise<Fate>;
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private error: string | undefined;

  constructor(socket: Socket) {
    this.socket = socket;
    this.connected = new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    this.connected.catch(() => undefined);
    socket.on('data', (chunk: Buffer) => this.chunks.push(chunk));
    socket.on('end', () => (this.ended = true));
    socket.on('error', (err: NodeJS.ErrnoException) => (this.error ??= err.code ?? err.message));
    this.fate = new Promise((resolve) => {
      socket.once('close', () => resolve({ data: Buffer.concat(this.chunks), ended: this.ended, error: this.error }));
    });
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  get closed(): boolean {
    return this.socket.destroyed;
  }

  /** Writes `text` and resolves with the first `expected` bytes echoed back. */
  async roundTrip(text: string): Promise<string> {
    const before = this.received.length;
    this.socket.write(text);
    await until(() => this.received.length >= before + Buffer.byteLength(text) || this.closed, `echo of ${JSON.stringify(text)}`);
    return this.received.subarray(before).toString('utf8');
  }

  /** Closes the client side with FIN. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
