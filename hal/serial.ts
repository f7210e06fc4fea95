/**
 * Serial ports, built on serialport's binding interface (`@serialport/bindings-interface`): the
 * real board passes `@serialport/bindings-cpp`, the sim board a binding backed by device models. The
 * port logic here is the same for both. The part of that interface it uses is declared here
 * (`SerialBinding`), so that the HAL's types - and the package's declarations - stand on their own.
 *
 * Rules:
 * - A port reads continuously from open to close; bytes that arrive while nobody waits are kept
 *   (up to `maxBufferedBytes`, oldest dropped) until `transact` or `readUntil` consumes them.
 * - `transact` discards stale input, writes the request, then waits for a complete answer as judged
 *   by `isComplete`, under a timeout: a silent peer fails with ERR_HAL_TIMEOUT. On a half-duplex
 *   RS-485 line (`rs485`, hal/rs485.ts) each write is framed by the direction control, and where the
 *   transceiver echoes, `transact` consumes exactly the echoed request first: a different echo fails
 *   with ERR_HAL_BUS_COLLISION, none with ERR_HAL_NO_ECHO.
 * - Hardware flow control (`rtscts`) and RS-485 on one port are refused with ERR_HAL_RS485_CONFLICT.
 * - A read error that is not a deliberate close (`canceled`) means the device went away (USB adapter
 *   unplugged, pty closed): the port fails every pending and later operation with ERR_HAL_CLOSED
 *   (`canceled: false`).
 * - `close` is idempotent; pending operations then reject with ERR_HAL_CLOSED and `canceled: true`.
 */
import type { BoardConfig, SerialPortConfig } from '../config/board-config.js';
import type { Clock } from './clock.js';
import { withDeadline } from './deadline.js';
import { HalBusCollisionError, HalClosedError, HalError, HalNoEchoError, HalNotFoundError, HalRs485ConflictError, HalTimeoutError, HalUnsupportedError, halErrorFromErrno } from './errors.js';
import type { GpioController } from './gpio.js';
import { type DirectionControl, type Rs485Ioctl, type Rs485Spec, gpioDirection, kernelDirection } from './rs485.js';

export interface SerialPortSpec {
  path: string;
  baudRate: number;
  dataBits?: 5 | 6 | 7 | 8;
  stopBits?: 1 | 2;
  parity?: 'none' | 'even' | 'odd';
  /** Hardware flow control (CRTSCTS). Default false. */
  rtscts?: boolean;
  /** A half-duplex RS-485 line and how its transceiver is switched; absent: a full-duplex line. */
  rs485?: Rs485Spec;
}

/** The HAL spec of a board entry's serial port: its RS-485 DE line resolved from the `gpio` table. */
export function serialPortSpec(board: Pick<BoardConfig, 'gpio'>, port: Readonly<SerialPortConfig>): SerialPortSpec {
  const { rs485, ...line } = port;
  if (!rs485) return line;
  const { deLine, ...rest } = rs485;
  const de = deLine === undefined ? undefined : board.gpio?.[deLine];
  if (deLine !== undefined && !de) {
    throw new HalNotFoundError(`serial port ${port.id}: rs485.deLine names GPIO line "${deLine}", which the board's gpio table does not define`, { target: `serial:${port.path}` });
  }
  return { ...line, rs485: { ...rest, ...(de && { deLine: { chip: de.chip, line: de.line, direction: 'out', ...(de.activeLow !== undefined && { activeLow: de.activeLow }) } }) } };
}

/** What `SerialBinding.open` is given: a subset of serialport's `OpenOptions`. */
export interface SerialOpenOptions {
  path: string;
  baudRate: number;
  dataBits?: 5 | 6 | 7 | 8;
  stopBits?: 1 | 1.5 | 2;
  parity?: 'none' | 'even' | 'odd' | 'mark' | 'space';
  rtscts?: boolean;
}

/** An open port of a binding: the part of serialport's `BindingPortInterface` used here. */
export interface SerialBindingPort {
  readonly isOpen: boolean;
  read(buffer: Buffer, offset: number, length: number): Promise<{ buffer: Buffer; bytesRead: number }>;
  write(buffer: Buffer): Promise<void>;
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** A serial binding: the part of serialport's `BindingInterface` used here, which its bindings satisfy as they are. */
export interface SerialBinding {
  open(options: SerialOpenOptions): Promise<SerialBindingPort>;
}

/** What the platform gives a port for RS-485 direction control. */
export interface SerialPlatform {
  /** Opens DE lines (`gpio` direction). */
  gpio?: GpioController;
  /** The port's TIOCSRS485 / TIOCGRS485 (`kernel` direction). */
  rs485Ioctl?: (port: SerialBindingPort) => Rs485Ioctl;
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
    private readonly port: SerialBindingPort,
    private readonly clock: Clock,
    path: string,
    private readonly direction: DirectionControl | undefined,
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
    const send = (): Promise<void> => this.output('write', () => this.port.write(data));
    if (!this.direction) return send();
    await this.direction.frame(send, () => this.output('drain', () => this.port.drain()));
  }

  /** An output operation of the port; one cut short because the device vanished fails as that loss, not as an I/O error of its own. */
  private async output(operation: 'write' | 'drain', run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (err) {
      throw this.failure ?? halErrorFromErrno(err, operation, this.target);
    }
  }

  async transact(request: Buffer, options: SerialTransactOptions): Promise<Buffer> {
    this.ensureUsable();
    this.received = Buffer.alloc(0);
    const started = this.clock.now();
    await this.write(request);
    if (!this.direction?.echo) return this.readUntil(options);
    await this.consumeEcho(request, options);
    return this.readUntil({ ...options, timeoutMs: Math.max(0, options.timeoutMs - (this.clock.now() - started)) });
  }

  /**
   * Takes exactly `request.length` bytes off the input and checks that they are the request: the
   * transceiver's echo. What follows them stays for the answer.
   */
  private async consumeEcho(request: Buffer, options: SerialTransactOptions): Promise<void> {
    let heard: Buffer = Buffer.alloc(0);
    const differs = (received: Buffer): boolean => {
      const n = Math.min(received.length, request.length);
      return !received.subarray(0, n).equals(request.subarray(0, n));
    };
    try {
      heard = await this.readUntil({
        ...options,
        isComplete: (received) => {
          heard = received;
          return received.length >= request.length || differs(received);
        },
      });
    } catch (err) {
      if (!(err instanceof HalTimeoutError)) throw err;
      if (heard.length === 0) {
        throw new HalNoEchoError(
          `${this.target}: no echo of the ${request.length}-byte request within ${options.timeoutMs} ms: the transceiver did not drive the bus (DE not switched, or wired elsewhere), or its receiver is off while it drives (/RE tied to DE: set rs485.echo false)`,
          { target: this.target, cause: err },
        );
      }
      // A short echo that stopped: the bus took only part of the frame.
    }
    if (heard.length < request.length || differs(heard)) {
      const at = [...request].findIndex((byte, i) => heard[i] !== byte);
      throw new HalBusCollisionError(
        `${this.target}: the echo of our request differs from what we sent at byte ${at} (sent ${hexDump(request, request.length)}, heard ${hexDump(heard.subarray(0, request.length), request.length) || 'nothing more'}): another driver was on the bus while we sent (a second master, a slave answering late), the wiring is wrong (A/B swapped, missing termination or bias), or the transceiver does not echo at all (/RE tied to DE: set rs485.echo false) and these are the answer's first bytes`,
        { target: this.target },
      );
    }
    const surplus = heard.subarray(request.length);
    if (surplus.length > 0) this.received = Buffer.concat([surplus, this.received]);
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
    if (!this.closing) {
      const closePort = this.port.isOpen ? this.port.close().catch(() => undefined) : Promise.resolve();
      this.closing = closePort.then(async () => {
        await this.direction?.close().catch(() => undefined);
      });
    }
    return this.closing;
  }
}

/**
 * Bytes as hex for messages, at most `limit` of them (default 32), so a flood of noise keeps messages
 * short; a frame we sent is shown whole by passing its length.
 */
export function hexDump(data: Buffer, limit = 32): string {
  const shown = [...data.subarray(0, limit)].map((byte) => byte.toString(16).padStart(2, '0')).join(' ');
  return data.length > limit ? `${shown} ... (${data.length} bytes)` : shown;
}

/**
 * Opens a serial port through `binding`; the same code runs over the real and the simulated binding.
 * An `rs485` port gets its direction control from `platform` before it is handed out.
 */
export async function openSerialPort(binding: SerialBinding, clock: Clock, spec: SerialPortSpec, platform: SerialPlatform = {}): Promise<SerialPort> {
  const target = `serial:${spec.path}`;
  if (spec.rs485 && spec.rtscts) {
    throw new HalRs485ConflictError(
      `${target}: hardware flow control (rtscts) and RS-485 on one port conflict: RTS is the transceiver's driver enable, not a flow-control output, and nothing on an RS-485 transceiver drives CTS, so the transmitter would wait for a CTS that never comes; remove rtscts from this serial port`,
      { target },
    );
  }
  const options: SerialOpenOptions = {
    path: spec.path,
    baudRate: spec.baudRate,
    dataBits: spec.dataBits ?? 8,
    stopBits: spec.stopBits ?? 1,
    parity: spec.parity ?? 'none',
    rtscts: spec.rtscts ?? false,
  };
  let port: SerialBindingPort;
  try {
    port = await binding.open(options);
  } catch (err) {
    throw halErrorFromErrno(err, 'open', target);
  }
  let direction: DirectionControl | undefined;
  try {
    direction = spec.rs485 ? await openDirection(port, clock, spec.rs485, platform, target) : undefined;
  } catch (err) {
    await port.close().catch(() => undefined);
    throw err;
  }
  return new BindingSerialPort(port, clock, spec.path, direction);
}

async function openDirection(port: SerialBindingPort, clock: Clock, rs485: Rs485Spec, platform: SerialPlatform, target: string): Promise<DirectionControl> {
  if (rs485.direction === 'gpio') {
    if (!platform.gpio) throw new HalUnsupportedError(`${target}: this board offers no GPIO controller for the RS-485 DE line`, { target });
    return gpioDirection(platform.gpio, clock, rs485, target);
  }
  if (!platform.rs485Ioctl) throw new HalUnsupportedError(`${target}: this board cannot set the kernel's RS-485 mode (no TIOCSRS485)`, { target });
  return kernelDirection(platform.rs485Ioctl(port), rs485, target);
}
