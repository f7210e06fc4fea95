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
import { nmeaChecksum } from '../hal/drivers/serial-peer.js';
import { functionCodes, hasValidCrc, rtuFrameGapMs, serialCharMs, withCrc } from '../hal/drivers/modbus-rtu.js';
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

export interface ModbusRtuPeerOptions {
  unitId: number;
  /** Register address to value; addresses not listed answer exception 0x02. Default: 0-15, all 0. */
  holdingRegisters?: Record<number, number> | number[];
  /** The slave's processing time after the frame gap. Default 2 ms. */
  turnaroundMs?: number;
}

/**
 * A Modbus RTU slave: reads holding registers (function 3) and writes single registers (6). Frames
 * end at 3.5 silent characters; frames with a bad CRC or for other units are ignored, broadcasts
 * (unit 0) are executed without an answer, as the specification says.
 */
export class ModbusRtuPeer implements SerialPeerModel {
  readonly unitId: number;
  readonly registers: Map<number, number>;
  /** Frames received whole and addressed to this unit. */
  requests = 0;
  /** Frames dropped for a bad CRC or a runt. */
  rejectedFrames = 0;
  private readonly turnaroundMs: number;
  private link: SerialPeerLink | undefined;
  private frame = Buffer.alloc(0);
  private gapTimer: Timer | undefined;

  constructor(options: ModbusRtuPeerOptions) {
    this.unitId = options.unitId;
    this.turnaroundMs = options.turnaroundMs ?? 2;
    const registers = options.holdingRegisters ?? new Array<number>(16).fill(0);
    this.registers = new Map(Object.entries(registers).map(([address, value]) => [Number(address), value & 0xffff]));
  }

  connect(link: SerialPeerLink): void {
    this.link = link;
    this.frame = Buffer.alloc(0);
  }

  disconnect(): void {
    this.gapTimer?.cancel();
    this.link = undefined;
    this.frame = Buffer.alloc(0);
  }

  receive(data: Buffer): void {
    const link = this.link;
    if (!link) return;
    this.frame = Buffer.concat([this.frame, data]);
    this.gapTimer?.cancel();
    this.gapTimer = link.clock.setTimeout(() => {
      const frame = this.frame;
      this.frame = Buffer.alloc(0);
      this.handle(frame, link);
    }, rtuFrameGapMs(link.baudRate, link.charMs));
  }

  private handle(frame: Buffer, link: SerialPeerLink): void {
    if (frame.length < 4 || !hasValidCrc(frame)) {
      this.rejectedFrames += 1;
      return;
    }
    const unit = frame[0]!;
    if (unit !== this.unitId && unit !== 0) return;
    this.requests += 1;
    const answer = this.execute(frame.subarray(0, frame.length - 2));
    if (unit === 0) return;
    link.clock.setTimeout(() => {
      if (this.link === link) link.send(withCrc(answer));
    }, this.turnaroundMs);
  }

  private execute(request: Buffer): Buffer {
    const fn = request[1]!;
    const exception = (code: number): Buffer => Buffer.of(this.unitId, fn | 0x80, code);
    if (fn === functionCodes.readHoldingRegisters) {
      if (request.length !== 6) return exception(0x03);
      const address = request.readUInt16BE(2);
      const quantity = request.readUInt16BE(4);
      if (quantity < 1 || quantity > 125) return exception(0x03);
      const values: number[] = [];
      for (let i = 0; i < quantity; i++) {
        const value = this.registers.get(address + i);
        if (value === undefined) return exception(0x02);
        values.push(value);
      }
      const answer = Buffer.alloc(3 + 2 * quantity);
      answer[0] = this.unitId;
      answer[1] = fn;
      answer[2] = 2 * quantity;
      values.forEach((value, i) => answer.writeUInt16BE(value, 3 + 2 * i));
      return answer;
    }
    if (fn === functionCodes.writeSingleRegister) {
      if (request.length !== 6) return exception(0x03);
      const address = request.readUInt16BE(2);
      if (!this.registers.has(address)) return exception(0x02);
      this.registers.set(address, request.readUInt16BE(4));
      return Buffer.from(request);
    }
    return exception(0x01);
  }
}

export interface NmeaPeerOptions {
  /** Default `GP` (GPS). */
  talker?: string;
  latitude?: number;
  longitude?: number;
  altitudeM?: number;
  satellites?: number;
  /** Default 1000: one fix per second, the usual rate of a GPS receiver. */
  intervalMs?: number;
}

/** A GPS receiver that sends a GGA fix sentence every interval of virtual time while the port is open. */
export class NmeaPeer implements SerialPeerModel {
  private readonly options: Required<NmeaPeerOptions>;
  private timer: Timer | undefined;
  /** Sentences sent since the port opened. */
  sent = 0;

  constructor(options: NmeaPeerOptions = {}) {
    this.options = {
      talker: 'GP',
      latitude: 48.1173,
      longitude: 11.516667,
      altitudeM: 545.4,
      satellites: 8,
      intervalMs: 1000,
      ...options,
    };
  }

  connect(link: SerialPeerLink): void {
    this.timer?.cancel();
    this.timer = link.clock.setInterval(() => {
      this.sent += 1;
      link.send(Buffer.from(this.sentence(link.clock.now()), 'latin1'));
    }, this.options.intervalMs);
  }

  disconnect(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  receive(): void {}

  /** `$GPGGA,...*hh\r\n` for the fix at `atMs`. */
  sentence(atMs: number): string {
    const { talker, latitude, longitude, altitudeM, satellites } = this.options;
    const t = new Date(atMs);
    const time = `${pad(t.getUTCHours(), 2)}${pad(t.getUTCMinutes(), 2)}${pad(t.getUTCSeconds(), 2)}.${pad(Math.floor(t.getUTCMilliseconds() / 10), 2)}`;
    const body = [
      `${talker}GGA`,
      time,
      angle(Math.abs(latitude), 2),
      latitude >= 0 ? 'N' : 'S',
      angle(Math.abs(longitude), 3),
      longitude >= 0 ? 'E' : 'W',
      '1',
      pad(satellites, 2),
      '0.9',
      altitudeM.toFixed(1),
      'M',
      '46.9',
      'M',
      '',
      '',
    ].join(',');
    return `$${body}*${nmeaChecksum(body).toString(16).toUpperCase().padStart(2, '0')}\r\n`;
  }
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/** Degrees as NMEA's dddmm.mmmm. */
function angle(degrees: number, degreeDigits: number): string {
  const whole = Math.floor(degrees);
  const minutes = (degrees - whole) * 60;
  return `${pad(whole, degreeDigits)}${minutes.toFixed(4).padStart(7, '0')}`;
}
