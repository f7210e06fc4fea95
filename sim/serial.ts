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
 */
import type { BindingInterface, OpenOptions, PortInfo } from '@serialport/bindings-interface';
import { MockPortBinding, type MockPortInternal } from '@serialport/binding-mock';
import type { Clock, Timer } from '../hal/clock.js';
import { serialCharMs } from '../hal/drivers/modbus-rtu.js';
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
  open: SimPortBinding | undefined;
}

/** One opened port: binding-mock's port plus the wire to the peer model. */
export class SimPortBinding extends MockPortBinding {
  private rejectPendingRead: ((err: Error) => void) | undefined;
  private gone: SystemError | undefined;
  private readonly timers = new Set<Timer>();
  private hostFreeAt = 0;
  private peerFreeAt = 0;
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
    this.hostFreeAt = this.onWire(this.hostFreeAt, data.length);
    this.later(() => this.line.model.receive(data), this.hostFreeAt - this.binding.clock.now());
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
  addPeer(path: string, model: SerialPeerModel, faultTarget: string): void {
    if (this.lines.has(path)) throw systemError('EEXIST', `serial path ${path} already has a peer`);
    const device: MockPortInternal = {
      data: Buffer.alloc(0),
      echo: false,
      record: true,
      maxReadSize: 1024,
      info: { path, manufacturer: 'handcheck sim', serialNumber: faultTarget, pnpId: undefined, locationId: undefined, vendorId: undefined, productId: undefined },
    };
    this.lines.set(path, { path, model, faultTarget, device, open: undefined });
    this.faults.register(faultTarget, serialFaultKinds);
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
