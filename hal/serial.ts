/**
 * Serial ports, built on serialport's binding interface (`@serialport/bindings-interface`): the
 * real board passes `@serialport/bindings-cpp`, the sim board a binding backed by device models. The
 * port logic here is the same for both.
 *
 * Rules:
 * - A port reads continuously from open to close; bytes that arrive while nobody waits are kept
 *   (up to `maxBufferedBytes`, oldest dropped) until `transact` or `readUntil` consumes them.
 * - `transact` discards stale input, writes the request, then waits for a complete answer as judged
 *   by `isComplete`, under a timeout: a silent peer fails with ERR_HAL_TIMEOUT.
 * - A read error that is not a deliberate close (`canceled`) means the device went away (USB adapter
 *   unplugged, pty closed): the port fails every pending and later operation with ERR_HAL_CLOSED
 *   (`canceled: false`).
 * - `close` is idempotent; pending operations then reject with ERR_HAL_CLOSED and `canceled: true`.
 */
import type { BindingInterface, BindingPortInterface, OpenOptions } from '@serialport/bindings-interface';
import type { Clock } from './clock.js';
import { withDeadline } from './deadline.js';
import { HalClosedError, HalError, halErrorFromErrno } from './errors.js';

export interface SerialPortSpec {
  path: string;
  baudRate: number;
  dataBits?: 5 | 6 | 7 | 8;
  stopBits?: 1 | 2;
  parity?: 'none' | 'even' | 'odd';
}

export interface SerialTransactOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** True once `received` holds a whole answer. */
  isComplete: (received: Buffer) => boolean;
}

export interface SerialPort {
  readonly target: string;
  readonly isOpen: boolean;
  write(data: Buffer): Promise<void>;
  /** Writes `request` and resolves with the bytes received until `isComplete` said so. */
  transact(request: Buffer, options: SerialTransactOptions): Promise<Buffer>;
  /** Waits for buffered or new input until `isComplete`; consumes what it returns. */
  readUntil(options: SerialTransactOptions): Promise<Buffer>;
  close(): Promise<void>;
}

export interface SerialController {
  open(spec: SerialPortSpec): Promise<SerialPort>;
}

const maxBufferedBytes = 64 * 1024;

interface Waiter {
  isComplete: (received: Buffer) => boolean;
  resolve: (data: Buffer) => void;
  reject: (err: HalError) => void;
}

class BindingSerialPort implements SerialPort {
  readonly target: string;
  private received = Buffer.alloc(0);
  private waiter: Waiter | undefined;
  private failure: HalError | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly port: BindingPortInterface,
    private readonly clock: Clock,
    path: string,
  ) {
    this.target = `serial:${path}`;
    void this.readLoop();
  }

  get isOpen(): boolean {
    return this.failure === undefined && this.port.isOpen;
  }

  private async readLoop(): Promise<void> {
    const chunk = Buffer.alloc(1024);
    for (;;) {
      try {
        const { bytesRead } = await this.port.read(chunk, 0, chunk.length);
        this.received = Buffer.concat([this.received, chunk.subarray(0, bytesRead)]);
        if (this.received.length > maxBufferedBytes) this.received = this.received.subarray(-maxBufferedBytes);
        this.offer();
      } catch (err) {
        const canceled = typeof err === 'object' && err !== null && (err as { canceled?: unknown }).canceled === true;
        this.failure ??= new HalClosedError(
          canceled ? `${this.target} closed` : `${this.target} went away: ${err instanceof Error ? err.message : String(err)}`,
          { target: this.target, canceled, cause: err },
        );
        const waiter = this.waiter;
        this.waiter = undefined;
        waiter?.reject(this.failure);
        return;
      }
    }
  }

  private offer(): void {
    const waiter = this.waiter;
    if (!waiter || !waiter.isComplete(this.received)) return;
    const data = this.received;
    this.received = Buffer.alloc(0);
    this.waiter = undefined;
    waiter.resolve(data);
  }

  private ensureUsable(): void {
    if (this.failure) throw this.failure;
    if (this.closing) throw new HalClosedError(`${this.target} is closed`, { target: this.target, canceled: true });
  }

  async write(data: Buffer): Promise<void> {
    this.ensureUsable();
    try {
      await this.port.write(data);
    } catch (err) {
      // A write cut short because the device vanished is that loss, not an I/O error of its own.
      throw this.failure ?? halErrorFromErrno(err, 'write', this.target);
    }
  }

  async transact(request: Buffer, options: SerialTransactOptions): Promise<Buffer> {
    this.ensureUsable();
    this.received = Buffer.alloc(0);
    await this.write(request);
    return this.readUntil(options);
  }

  readUntil({ timeoutMs, signal, isComplete }: SerialTransactOptions): Promise<Buffer> {
    this.ensureUsable();
    if (this.waiter) {
      return Promise.reject(new HalError('ERR_HAL_BUS_BUSY', `${this.target} already has a read waiting`, { target: this.target }));
    }
    const answer = new Promise<Buffer>((resolve, reject) => {
      this.waiter = { isComplete, resolve, reject };
    });
    this.offer();
    return withDeadline(this.clock, answer, 'serial read', this.target, { timeoutMs, signal }).finally(() => {
      if (this.waiter?.isComplete === isComplete) this.waiter = undefined;
    });
  }

  close(): Promise<void> {
    if (!this.closing) this.closing = this.port.isOpen ? this.port.close().catch(() => undefined) : Promise.resolve();
    return this.closing;
  }
}

/** Opens a serial port through `binding`; the same code runs over the real and the simulated binding. */
export async function openSerialPort(binding: BindingInterface, clock: Clock, spec: SerialPortSpec): Promise<SerialPort> {
  const options: OpenOptions = {
    path: spec.path,
    baudRate: spec.baudRate,
    dataBits: spec.dataBits ?? 8,
    stopBits: spec.stopBits ?? 1,
    parity: spec.parity ?? 'none',
  };
  let port: BindingPortInterface;
  try {
    port = await binding.open(options);
  } catch (err) {
    throw halErrorFromErrno(err, 'open', `serial:${spec.path}`);
  }
  return new BindingSerialPort(port, clock, spec.path);
}
