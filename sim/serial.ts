/**
 * The sim board's serial ports: a serialport `BindingInterface` whose ports are binding-mock's
 * MockPortBinding, with a device model at the far end of each line and the fault API in between.
 *
 * The port table belongs to each SimSerialBinding (MockBinding keeps one global table, which two sim
 * boards in one process would share). Bytes take their time on the wire at the opened baud rate, on
 * the board's virtual clock, in both directions.
 *
 * Faults, on the target given to `addPeer`:
 * - `silent`: the peer's answers are lost.
 * - `garbage`: each answer arrives with one byte corrupted, or as random bytes of the same length.
 * - `unplugged`: the open port's pending read fails with EIO (not `canceled`), as when a USB adapter
 *   is pulled; opening fails with ENOENT until the fault clears. Each failed read or open counts
 *   against `times`.
 * - `collision`: another driver is on an RS-485 bus while the host sends one frame: a byte of it is
 *   corrupted on the wire, for the peer and for the host's echo alike.
 *
 * An RS-485 line has a half-duplex transceiver between the UART and the bus (SimTransceiver): the
 * host's bytes reach the bus only while DE is high at both ends of the character (MAX485 / SN65HVD72
 * function tables: driver enabled with DE high, outputs high-impedance with DE low), the peer's
 * answer reaches the host only while DE is low (while DE is high our own driver holds the bus at the
 * idle level), and a transceiver whose receiver stays on while it drives (/RE grounded) echoes what it
 * drives. DE follows RTS (the kernel's RS-485 mode; outside it RTS is asserted from open, which is a
 * low pin) or a GPIO line. The UART's RS-485 ioctls follow serial_core.c and the driver named for the
 * line (SimUartDriver).
 */
import type { BindingInterface, OpenOptions, PortInfo } from '@serialport/bindings-interface';
import { MockPortBinding, type MockPortInternal } from '@serialport/binding-mock';
import type { Clock, Timer } from '../hal/clock.js';
import { serialCharMs } from '../hal/drivers/modbus-rtu.js';
import type { GpioValue } from '../hal/gpio.js';
import {
  type Rs485Ioctl,
  SER_RS485_ENABLED,
  SER_RS485_RTS_AFTER_SEND,
  SER_RS485_RTS_ON_SEND,
  SER_RS485_RX_DURING_TX,
  SER_RS485_TERMINATE_BUS,
  type SerialRs485,
} from '../hal/rs485.js';
import type { FaultKindInfo, FaultRegistry } from './faults.js';

/** What a device model sees of the line while the host has the port open. */
export interface SerialPeerLink {
  readonly clock: Clock;
  readonly baudRate: number;
  /** Time one character takes on the wire at the port's settings, in ms. */
  readonly charMs: number;
  /** Sends bytes to the host; they arrive once they have crossed the wire. */
  send(data: Buffer): void;
}

/** A device at the far end of a simulated serial line. */
export interface SerialPeerModel {
  /** The host opened the port. */
  connect(link: SerialPeerLink): void;
  /** The host closed the port, or the line went away. */
  disconnect(): void;
  /** Bytes the host wrote, after they crossed the wire. */
  receive(data: Buffer): void;
}

export const serialFaultKinds: FaultKindInfo[] = [
  { kind: 'silent', description: 'the peer does not answer' },
  { kind: 'garbage', description: 'answers arrive corrupted: one byte flipped, or random bytes' },
  { kind: 'unplugged', description: 'the adapter is pulled: the open port fails, reopening gives ENOENT until cleared' },
];

/** Only on lines with an RS-485 transceiver. */
export const rs485FaultKinds: FaultKindInfo[] = [
  { kind: 'collision', description: 'another driver on the RS-485 bus while the host sends: one byte of the frame corrupted, in the echo too' },
];

/**
 * The UART's driver, for its RS-485 ioctls: `pl011` (drivers/tty/serial/amba-pl011.c,
 * pl011_rs485_supported), `bcm2835aux` (a Raspberry Pi's mini UART, 8250_bcm2835aux.c with
 * serial8250_em485_supported from 8250_port.c), `none` (a driver without RS-485 mode, such as a PC's
 * 16550 under 8250_pnp or a USB adapter: TIOCSRS485 answers ENOTTY).
 */
export type SimUartDriver = 'pl011' | 'bcm2835aux' | 'none';

const rs485Supported: Record<SimUartDriver, SerialRs485 | undefined> = {
  pl011: { flags: SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND | SER_RS485_RTS_AFTER_SEND | SER_RS485_RX_DURING_TX, delayRtsBeforeSend: 1, delayRtsAfterSend: 1 },
  // SER_RS485_TERMINATE_BUS as well: the em485 set has it.
  bcm2835aux: {
    flags: SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND | SER_RS485_RTS_AFTER_SEND | SER_RS485_TERMINATE_BUS | SER_RS485_RX_DURING_TX,
    delayRtsBeforeSend: 1,
    delayRtsAfterSend: 1,
  },
  none: undefined,
};

/** The driver the sim board assumes from a device path, as a Raspberry Pi names its UARTs. */
export function simUartDriver(path: string): SimUartDriver {
  if (/\/ttyAMA\d+$/.test(path)) return 'pl011';
  if (/\/ttyS0$/.test(path)) return 'bcm2835aux';
  return 'none';
}

/** A half-duplex RS-485 transceiver between the UART and the bus. */
export interface SimTransceiver {
  /** What drives DE: the UART's RTS pin (through an inverter when `inverted`), or a GPIO line's physical level. */
  de: { rts: { inverted: boolean } } | { line: () => GpioValue };
  /** The receiver stays enabled while the driver drives (/RE grounded): our own bytes come back. */
  echo: boolean;
}

export interface SimLineOptions {
  /** Default from the path (simUartDriver). */
  uart?: SimUartDriver;
  /** Absent: a full-duplex line (RS-232, RS-422, an adapter that switches direction itself). */
  transceiver?: SimTransceiver;
}

/** The RS-485 legacy flags (serial_core.c SER_RS485_LEGACY_FLAGS), which are dropped rather than refused. */
const legacyFlags = SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND | SER_RS485_RTS_AFTER_SEND | SER_RS485_RX_DURING_TX | SER_RS485_TERMINATE_BUS;
/** RS485_MAX_RTS_DELAY in include/uapi/linux/serial.h... serial_core.h: 100 ms. */
const maxRtsDelayMs = 100;

/**
 * TIOCSRS485 as serial_core.c does it: ENOTTY without driver support (uart_set_rs485_config), EINVAL
 * for non-legacy flags the driver lacks (uart_check_rs485_flags), then uart_sanitize_serial_rs485:
 * RS-485 off clears everything, unsupported flags are dropped, RTS_ON_SEND and RTS_AFTER_SEND both or
 * neither becomes RTS_ON_SEND, delays the driver cannot do are zeroed and others clamped to 100 ms.
 */
export function sanitizeRs485(uart: SimUartDriver, request: SerialRs485): SerialRs485 {
  const supported = rs485Supported[uart];
  if (!supported || (supported.flags & SER_RS485_ENABLED) === 0) throw systemError('ENOTTY', 'TIOCSRS485: Inappropriate ioctl for device');
  if ((request.flags & ~legacyFlags & ~supported.flags) !== 0) throw systemError('EINVAL', 'TIOCSRS485: Invalid argument');
  if ((request.flags & SER_RS485_ENABLED) === 0) return { flags: 0, delayRtsBeforeSend: 0, delayRtsAfterSend: 0 };
  let flags = request.flags & supported.flags;
  if (((flags & SER_RS485_RTS_ON_SEND) === 0) === ((flags & SER_RS485_RTS_AFTER_SEND) === 0)) {
    flags = (flags | SER_RS485_RTS_ON_SEND) & ~SER_RS485_RTS_AFTER_SEND;
  }
  const delay = (ms: number, can: number): number => (can ? Math.min(ms, maxRtsDelayMs) : 0);
  return { flags, delayRtsBeforeSend: delay(request.delayRtsBeforeSend, supported.delayRtsBeforeSend), delayRtsAfterSend: delay(request.delayRtsAfterSend, supported.delayRtsAfterSend) };
}

type SystemError = Error & { code: string };

function systemError(code: string, message: string): SystemError {
  return Object.assign(new Error(message), { code });
}

/** xorshift32: garbage must be reproducible from run to run. */
function rng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
}

interface Line {
  readonly path: string;
  readonly model: SerialPeerModel;
  readonly faultTarget: string;
  readonly device: MockPortInternal;
  readonly uart: SimUartDriver;
  readonly transceiver: SimTransceiver | undefined;
  open: SimPortBinding | undefined;
}

/** One opened port: binding-mock's port plus the wire to the peer model. */
export class SimPortBinding extends MockPortBinding {
  private rejectPendingRead: ((err: Error) => void) | undefined;
  private gone: SystemError | undefined;
  private readonly timers = new Set<Timer>();
  private hostFreeAt = 0;
  private peerFreeAt = 0;
  /** The port's struct serial_rs485, as TIOCGRS485 reads it. */
  private rs485: SerialRs485 = { flags: 0, delayRtsBeforeSend: 0, delayRtsAfterSend: 0 };
  /** The kernel's RS-485 mode holds RTS at its sending level from the write until the last stop bit plus the after-send delay. */
  private sendingUntil = -Infinity;
  readonly charMs: number;

  constructor(
    device: MockPortInternal,
    openOptions: Required<OpenOptions>,
    private readonly line: Line,
    private readonly binding: SimSerialBinding,
  ) {
    super(device, openOptions);
    this.charMs = serialCharMs(openOptions.baudRate, openOptions.dataBits, openOptions.parity, openOptions.stopBits);
  }

  override read(buffer: Buffer, offset: number, length: number): Promise<{ buffer: Buffer; bytesRead: number }> {
    if (this.gone) return Promise.reject(this.gone);
    return new Promise((resolve, reject) => {
      const mine = (err: Error): void => reject(err);
      this.rejectPendingRead = mine;
      super
        .read(buffer, offset, length)
        .then(resolve, reject)
        .finally(() => {
          if (this.rejectPendingRead === mine) this.rejectPendingRead = undefined;
        });
    });
  }

  override async write(buffer: Buffer): Promise<void> {
    await super.write(buffer);
    const data = Buffer.from(buffer);
    if (this.line.transceiver) {
      this.sendOnBus(data, this.line.transceiver);
      return;
    }
    this.hostFreeAt = this.onWire(this.hostFreeAt, data.length);
    this.later(() => this.line.model.receive(data), this.hostFreeAt - this.binding.clock.now());
  }

  /** tcdrain: resolves once the last stop bit has left. */
  override async drain(): Promise<void> {
    await super.drain();
    const left = this.hostFreeAt - this.binding.clock.now();
    if (left > 0) await this.binding.clock.sleep(left);
  }

  /** TIOCSRS485 / TIOCGRS485 on this port. */
  rs485Ioctl(): Rs485Ioctl {
    return {
      set: (request) => {
        this.rs485 = sanitizeRs485(this.line.uart, request);
        return { ...this.rs485 };
      },
      get: () => ({ ...this.rs485 }),
    };
  }

  private get kernelRs485(): boolean {
    return (this.rs485.flags & SER_RS485_ENABLED) !== 0;
  }

  /** The transceiver's DE now. */
  private driving(transceiver: SimTransceiver): boolean {
    if ('line' in transceiver.de) return transceiver.de.line() === 1;
    // Outside RS-485 mode RTS is asserted from open (uart_port_dtr_rts), which is a low pin.
    let rtsHigh = false;
    if (this.kernelRs485) {
      const sending = this.binding.clock.now() < this.sendingUntil;
      rtsHigh = (this.rs485.flags & (sending ? SER_RS485_RTS_ON_SEND : SER_RS485_RTS_AFTER_SEND)) !== 0;
    }
    return rtsHigh !== transceiver.de.rts.inverted;
  }

  /**
   * Each character reaches the bus only if DE is high as its start bit begins and as its stop bit
   * ends; what reaches the bus is what the peer hears and, with an echoing transceiver, what the host
   * hears back - unless the UART's own RS-485 mode keeps its receiver off while sending.
   */
  private sendOnBus(data: Buffer, transceiver: SimTransceiver): void {
    const clock = this.binding.clock;
    const before = this.kernelRs485 ? this.rs485.delayRtsBeforeSend : 0;
    const start = Math.max(this.hostFreeAt, clock.now()) + before;
    this.hostFreeAt = start + data.length * this.charMs;
    if (this.kernelRs485) this.sendingUntil = this.hostFreeAt + this.rs485.delayRtsAfterSend;
    const hearsOwn = transceiver.echo && (!this.kernelRs485 || (this.rs485.flags & SER_RS485_RX_DURING_TX) !== 0);
    // Which byte the other driver spoils (the middle one) and how (XOR 0x55) are the fault's own choice,
    // not a bus behaviour: a collision corrupts whatever bits overlap, and any corruption must be caught.
    const collided = this.binding.faults.hit(this.line.faultTarget, 'collision') ? Math.floor(data.length / 2) : -1;
    data.forEach((sent, i) => {
      const byte = i === collided ? sent ^ 0x55 : sent;
      let enabledAtStart = false;
      // DE is sampled as the start bit begins and within the stop bit, which ends when tcdrain returns.
      // 0.95 of the character lies inside the stop bit of a 10-bit (8N1: 0.9-1.0) and an 11-bit (8E1,
      // 8N2: 0.91-1.0) character alike.
      this.later(() => (enabledAtStart = this.driving(transceiver)), start + i * this.charMs - clock.now());
      this.later(() => {
        if (!enabledAtStart || !this.driving(transceiver)) return;
        this.line.model.receive(Buffer.of(byte));
        if (hearsOwn && this.isOpen) this.emitData(Buffer.of(byte));
      }, start + (i + 0.95) * this.charMs - clock.now());
    });
  }

  override async close(): Promise<void> {
    await super.close();
    this.detach();
  }

  /** Bytes from the peer, after the fault API had its say. */
  fromPeer(data: Buffer): void {
    if (!this.isOpen) return;
    const { faults } = this.binding;
    if (faults.hit(this.line.faultTarget, 'silent')) return;
    const sent = faults.hit(this.line.faultTarget, 'garbage') ? this.binding.garble(data) : data;
    const transceiver = this.line.transceiver;
    if (transceiver) {
      // While our DE is high our driver holds the bus: the peer's characters never reach our receiver.
      const start = Math.max(this.peerFreeAt, this.binding.clock.now());
      this.peerFreeAt = start + sent.length * this.charMs;
      sent.forEach((byte, i) => {
        this.later(() => {
          if (this.isOpen && !this.driving(transceiver)) this.emitData(Buffer.of(byte));
        }, start + (i + 1) * this.charMs - this.binding.clock.now());
      });
      return;
    }
    this.peerFreeAt = this.onWire(this.peerFreeAt, sent.length);
    this.later(() => {
      if (this.isOpen) this.emitData(sent);
    }, this.peerFreeAt - this.binding.clock.now());
  }

  /** The adapter vanished: the pending read fails the way a real one does, then the port is dead. */
  unplug(): void {
    this.gone = systemError('EIO', `${this.line.path}: Input/output error, device disconnected`);
    const reject = this.rejectPendingRead;
    this.rejectPendingRead = undefined;
    reject?.(this.gone);
    if (this.isOpen) void super.close().catch(() => undefined);
    this.detach();
  }

  private onWire(freeAt: number, bytes: number): number {
    return Math.max(freeAt, this.binding.clock.now()) + bytes * this.charMs;
  }

  private later(fn: () => void, ms: number): void {
    const timer = this.binding.clock.setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  private detach(): void {
    if (this.line.open !== this) return;
    this.line.open = undefined;
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
    this.line.model.disconnect();
  }
}

export class SimSerialBinding implements BindingInterface<SimPortBinding> {
  private readonly lines = new Map<string, Line>();
  private readonly random: () => number;

  constructor(
    readonly clock: Clock,
    readonly faults: FaultRegistry,
    options: { seed?: number } = {},
  ) {
    this.random = rng(options.seed ?? 0x5eed);
    faults.on((event) => {
      if (event.type !== 'started' || event.fault.kind !== 'unplugged') return;
      for (const line of this.lines.values()) {
        if (line.faultTarget === event.fault.target && line.open && faults.hit(line.faultTarget, 'unplugged')) line.open.unplug();
      }
    });
  }

  /** Puts `model` at the far end of `path`; faults on `faultTarget` reach the line. */
  addPeer(path: string, model: SerialPeerModel, faultTarget: string, options: SimLineOptions = {}): void {
    if (this.lines.has(path)) throw systemError('EEXIST', `serial path ${path} already has a peer`);
    const device: MockPortInternal = {
      data: Buffer.alloc(0),
      echo: false,
      record: true,
      maxReadSize: 1024,
      info: { path, manufacturer: 'handcheck sim', serialNumber: faultTarget, pnpId: undefined, locationId: undefined, vendorId: undefined, productId: undefined },
    };
    this.lines.set(path, { path, model, faultTarget, device, uart: options.uart ?? simUartDriver(path), transceiver: options.transceiver, open: undefined });
    this.faults.register(faultTarget, options.transceiver ? [...serialFaultKinds, ...rs485FaultKinds] : serialFaultKinds);
  }

  /** The port currently open on `path`, for tests that inject input or look at `lastWrite`. */
  openPort(path: string): SimPortBinding | undefined {
    return this.lines.get(path)?.open;
  }

  async list(): Promise<PortInfo[]> {
    return [...this.lines.values()].filter((line) => !this.faults.active(line.faultTarget, 'unplugged')).map((line) => ({ ...line.device.info }));
  }

  async open(options: OpenOptions): Promise<SimPortBinding> {
    if (!options || typeof options.path !== 'string' || options.path === '') throw new TypeError('"path" is not a valid port');
    if (!(typeof options.baudRate === 'number' && options.baudRate > 0)) throw new TypeError('"baudRate" is not a valid baudRate');
    const openOptions: Required<OpenOptions> = {
      dataBits: 8,
      lock: true,
      stopBits: 1,
      parity: 'none',
      rtscts: false,
      xon: false,
      xoff: false,
      xany: false,
      hupcl: true,
      ...options,
    };
    await new Promise<void>((resolve) => process.nextTick(resolve));
    const line = this.lines.get(options.path);
    if (!line || this.faults.hit(line.faultTarget, 'unplugged')) {
      throw systemError('ENOENT', `No such file or directory, cannot open ${options.path}`);
    }
    if (line.open) throw systemError('EBUSY', `Resource busy, cannot lock ${options.path}`);
    line.device.data = Buffer.alloc(0);
    line.device.openOpt = { ...openOptions };
    const port = new SimPortBinding(line.device, openOptions, line, this);
    line.open = port;
    line.model.connect({
      clock: this.clock,
      baudRate: openOptions.baudRate,
      charMs: port.charMs,
      send: (data) => port.fromPeer(data),
    });
    return port;
  }

  /** Half the time one byte corrupted past the first, otherwise random bytes of the same length. */
  garble(data: Buffer): Buffer {
    if (data.length >= 4 && this.random() < 0.5) {
      const out = Buffer.from(data);
      const at = 1 + Math.floor(this.random() * (data.length - 3));
      out[at] = out[at]! ^ (1 + Math.floor(this.random() * 255));
      return out;
    }
    return Buffer.from(Array.from({ length: data.length }, () => Math.floor(this.random() * 256)));
  }
}
