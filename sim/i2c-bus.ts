/**
 * A simulated I2C bus. Chip models sit behind addresses and see the bus as a real chip does: write
 * transactions (usually a register pointer, then data) and read transactions (bytes clocked out from
 * the pointer). SMBus calls are split into those transactions here, exactly as the Linux i2c-dev
 * layer puts them on the wire, so drivers run unchanged against the models.
 *
 * Given a clock rate, every transfer takes its time on the board clock, as on the wire: 9 bits per
 * byte (8 data bits and the acknowledge, address bytes included), one SCL period for the START, each
 * repeated START and the STOP (UM10204 table 10: at 100 kHz t_HD;STA 4.0 us, t_SU;STA 4.7 us,
 * t_SU;STO 4.0 us, t_BUF 4.7 us, each about one 10 us period), plus the host's cost of a transfer
 * (`transferOverheadUs`). Transfers on one bus run one after another (hal/i2c-queue.ts); two buses
 * run at the same time. What went over each bus is counted per address (`traffic`).
 */
import type { I2cAdapterKind } from '../config/board-config.js';
import type { Clock } from '../hal/clock.js';
import { HalClosedError, HalInvalidArgumentError, halErrorFromErrno } from '../hal/errors.js';
import { type ByteOrder, type I2cBus, type I2cTransferOptions, i2cTarget } from '../hal/i2c.js';
import { I2cTransferQueue } from '../hal/i2c-queue.js';
import type { FaultKindInfo, FaultRegistry } from './faults.js';

/** A chip on the simulated bus, at register level. */
export interface I2cDeviceModel {
  /** A write transaction: the bytes after the address byte. */
  write(data: Buffer): void;
  /** A read transaction of `length` bytes, continuing from the chip's register pointer. */
  read(length: number): Buffer;
}

interface Attached {
  model: I2cDeviceModel;
  /** Fault target for device-level faults (nack, bus-timeout): the component id. */
  faultTarget: string;
}

type Transaction = { kind: 'write'; data: Buffer } | { kind: 'read'; length: number };

/** How a transfer ends: the errno the adapter driver returns and how long it held the bus first. */
interface Ending {
  errno: string;
  afterMs: number;
}

/**
 * How each kernel adapter driver ends the failures a bus can have. `adapterTimeoutMs` is the
 * i2c core's default `adap->timeout` (HZ, i2c-core-base.c i2c_register_adapter), which none of
 * these drivers changes.
 */
interface AdapterBehaviour {
  /** The chip did not acknowledge. */
  nack: string;
  /** A chip holds SCL low (stretches the clock) and never lets go. */
  stretched: Ending;
  /** A chip holds SDA low; `reads-zero` when the adapter cannot tell and the transfer "succeeds". */
  sdaLow: Ending | 'reads-zero';
  stuckDescription: string;
  stretchedDescription: string;
}

const adapterTimeoutMs = 1000;

export const i2cAdapters: Record<I2cAdapterKind, AdapterBehaviour> = {
  // drivers/i2c/busses/i2c-bcm2835.c: bcm2835_i2c_isr records S_ERR (no ACK) or S_CLKT (the
  // clock-stretch timeout CLKT, programmed from clk_tout_ms = 35 in clk_bcm2835_i2c_set_rate) and
  // bcm2835_i2c_xfer turns S_ERR into EREMOTEIO and anything else into EIO; only a transfer that
  // never completes gives ETIMEDOUT, at adap->timeout. The BSC has no arbitration or bus-busy
  // detection (its status register has TA, DONE, FIFO bits, ERR and CLKT only), so a chip holding
  // SDA low is not seen at all: every address bit and every ACK slot reads low, which is an ACK, and
  // every data byte reads 0x00. Inferred from the driver; a real bus shows it as i2cdetect finding a
  // chip at every address.
  bcm2835: {
    nack: 'EREMOTEIO',
    stretched: { errno: 'EIO', afterMs: 35 },
    sdaLow: 'reads-zero',
    stuckDescription: 'SDA held low: the bcm2835 cannot tell, every address acknowledges and every byte reads 0x00',
    stretchedDescription: 'the chip stretches the clock forever: the bcm2835 clock-stretch timeout ends the transfer with EIO after 35 ms',
  },
  // drivers/i2c/busses/i2c-designware-master.c: i2c_dw_handle_tx_abort gives EREMOTEIO for the
  // NOACK abort sources and EAGAIN only for ARB_LOST - which is what a master that releases SDA for
  // a 1 bit and reads it low concludes, so a chip holding SDA low loses the address phase every
  // time (the core retries EAGAIN adap->retries = 3 times, then returns it). i2c_dw_xfer: a
  // transfer that never completes (SCL held low) ends with "controller timed out", ETIMEDOUT, at
  // adap->timeout.
  designware: {
    nack: 'EREMOTEIO',
    stretched: { errno: 'ETIMEDOUT', afterMs: adapterTimeoutMs },
    sdaLow: { errno: 'EAGAIN', afterMs: 0 },
    stuckDescription: 'SDA held low: the DesignWare controller loses arbitration on the first address bit, EAGAIN',
    stretchedDescription: 'the chip stretches the clock forever: the transfer holds the bus until the adapter timeout (1 s), then ETIMEDOUT',
  },
  // Documentation/i2c/fault-codes.rst: ENXIO for an address phase without ACK, EBUSY for a bus busy
  // for longer than allowed, ETIMEDOUT for a slave stretching the clock too far.
  generic: {
    nack: 'ENXIO',
    stretched: { errno: 'ETIMEDOUT', afterMs: adapterTimeoutMs },
    sdaLow: { errno: 'EBUSY', afterMs: 0 },
    stuckDescription: 'SDA held low: the adapter reports the bus busy, EBUSY',
    stretchedDescription: 'the chip stretches the clock forever: the transfer holds the bus until the adapter timeout (1 s), then ETIMEDOUT',
  },
};

function i2cDeviceFaultKinds(adapter: I2cAdapterKind): FaultKindInfo[] {
  return [
    { kind: 'nack', description: `the chip does not acknowledge its address (${i2cAdapters[adapter].nack})` },
    { kind: 'bus-timeout', description: i2cAdapters[adapter].stretchedDescription },
  ];
}

/**
 * The host's cost of one transfer apart from the bus: the I2C_SMBUS ioctl through i2c-dev and the
 * i2c core, and the firmware's own path to it (hal/linux/i2c.ts: the transfer queue, i2c-bus's libuv
 * worker hop, the promises). Measured 2026-11-30, on a machine at load average ~20, by what is now
 * test/kernel/i2c-cost.ts (printed in the kernel lane's summary; then a suite test, whose timed calls
 * each included a vitest expect()) and on the host (now `npm run bench -- i2cOverhead`): in the
 * kernel lane (Debian 6.12 under QEMU TCG, i2c-stub, which answers from memory, so no wire time) an
 * SMBus read word ioctl took a median 1106 us and a null syscall (2 bytes from /dev/zero) 55.3 us,
 * against 2.8-3.1 us for the same null syscall on the x86 host: scaled by that slowdown, the i2c-dev
 * and i2c core part (1106 - 55 us) is ~53 us of host CPU. On the host, LinuxI2cBus.readWord over a
 * null libuv worker hop took a median 14.7 us (compiled, plain node; 68 us under vitest). 53 + 15 =
 * ~70 us. A Pi 4's Cortex-A72 is slower than this Xeon, so a Pi pays more; an earlier lane run on a
 * quieter machine gave 360 us for the ioctl, i.e. the figure is good to a factor of two, not better.
 * Timed without the expect(), at load ~12, the ioctl took 17 us and node's null readSync 41 us: the
 * i2c-dev part is lost in node's own cost, and 70 us is an upper bound.
 */
export const transferOverheadUs = 70;

/** Bytes, transfers and bus time on one bus, in total and per address. */
export interface I2cTrafficCount {
  transfers: number;
  /** Bytes on the wire: address bytes, command bytes and data. */
  bytes: number;
  /** Time the bus was occupied, host overhead included, in ms. */
  wireMs: number;
}

export interface I2cTraffic extends I2cTrafficCount {
  byAddress: Map<number, I2cTrafficCount>;
}

export interface SimI2cBusOptions {
  /** Default 50 ms. */
  defaultTimeoutMs?: number;
  /** Default `generic`. */
  adapter?: I2cAdapterKind;
  /**
   * SCL rate in Hz. Absent, transfers take no time on the board clock: for tests of a chip model's
   * registers alone. The sim board always gives its entry's rate (default 100 kHz).
   */
  clockHz?: number;
  /** Host cost per transfer in us when `clockHz` is given. Default `transferOverheadUs`. */
  overheadUs?: number;
}

/** Bits a transfer of these messages puts on the wire: START, each message's address and data bytes at 9 bits, a repeated START between messages, STOP. */
export function transferBits(messageBytes: readonly number[]): number {
  return messageBytes.reduce((bits, bytes) => bits + 9 * (1 + bytes), 0) + messageBytes.length + 1;
}

export class SimI2cBus implements I2cBus {
  readonly defaultTimeoutMs: number;
  readonly adapter: I2cAdapterKind;
  private readonly behaviour: AdapterBehaviour;
  private readonly devices = new Map<number, Attached>();
  private readonly queue: I2cTransferQueue;
  private closed = false;
  /** Transactions that reached a device, for tests that check what went over the wire. */
  transfers = 0;
  readonly clockHz: number | undefined;
  private readonly overheadUs: number;
  /** What went over the bus since it was made; `resetTraffic` starts the count again. */
  traffic: I2cTraffic = { transfers: 0, bytes: 0, wireMs: 0, byAddress: new Map() };

  constructor(
    readonly id: string,
    private readonly clock: Clock,
    private readonly faults: FaultRegistry,
    options: SimI2cBusOptions = {},
  ) {
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 50;
    this.adapter = options.adapter ?? 'generic';
    if (options.clockHz !== undefined && !(Number.isInteger(options.clockHz) && options.clockHz >= 10_000 && options.clockHz <= 1_000_000)) {
      throw new HalInvalidArgumentError(`clock rate ${String(options.clockHz)} Hz of ${id} is outside 10000-1000000`, { target: id });
    }
    this.clockHz = options.clockHz;
    this.overheadUs = options.overheadUs ?? transferOverheadUs;
    this.behaviour = i2cAdapters[this.adapter];
    this.queue = new I2cTransferQueue(clock, id);
    faults.register(id, [{ kind: 'stuck-bus', description: this.behaviour.stuckDescription }]);
  }

  attach(address: number, model: I2cDeviceModel, faultTarget: string): void {
    checkAddress(this.id, address);
    if (this.devices.has(address)) {
      throw new HalInvalidArgumentError(`address 0x${address.toString(16)} on ${this.id} is already taken`, { target: i2cTarget(this.id, address) });
    }
    this.devices.set(address, { model, faultTarget });
    this.faults.register(faultTarget, i2cDeviceFaultKinds(this.adapter));
  }

  private run(addr: number, what: string, transactions: Transaction[], opts: I2cTransferOptions | undefined): Promise<Buffer> {
    const target = i2cTarget(this.id, addr);
    if (this.closed) return Promise.reject(new HalClosedError(`${what} on closed bus ${this.id}`, { target, canceled: true }));
    try {
      checkAddress(this.id, addr);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.queue.run(target, what, () => this.execute(addr, target, what, transactions), {
      timeoutMs: opts?.timeoutMs ?? this.defaultTimeoutMs,
      signal: opts?.signal,
    });
  }

  /** The adapter driver's errno after it held the bus `afterMs`, as the kernel returns it. */
  private async fail(ending: Ending, what: string, target: string, why: string): Promise<never> {
    if (ending.afterMs > 0) await this.clock.sleep(ending.afterMs);
    throw halErrorFromErrno(Object.assign(new Error(`${why} (${ending.errno} from the ${this.adapter} adapter)`), { code: ending.errno }), what, target);
  }

  /** Zeroes the counts of `traffic`. */
  resetTraffic(): void {
    this.traffic = { transfers: 0, bytes: 0, wireMs: 0, byAddress: new Map() };
  }

  /** Holds the bus for a transfer of these messages (byte counts after the address) and counts it. */
  private async occupy(addr: number, messageBytes: readonly number[]): Promise<void> {
    const bytes = messageBytes.reduce((sum, n) => sum + 1 + n, 0);
    const wireMs = this.clockHz === undefined ? 0 : this.overheadUs / 1000 + (transferBits(messageBytes) * 1000) / this.clockHz;
    countTransfer(this.traffic, bytes, wireMs);
    countTransfer(this.trafficOf(addr), bytes, wireMs);
    if (wireMs > 0) await this.clock.sleep(wireMs);
  }

  private trafficOf(addr: number): I2cTrafficCount {
    let count = this.traffic.byAddress.get(addr);
    if (!count) this.traffic.byAddress.set(addr, (count = { transfers: 0, bytes: 0, wireMs: 0 }));
    return count;
  }

  private async execute(addr: number, target: string, what: string, transactions: Transaction[]): Promise<Buffer> {
    if (this.closed) throw new HalClosedError(`${what} on closed bus ${this.id}`, { target, canceled: true });
    await new Promise((resolve) => process.nextTick(resolve));
    const messages = transactions.map((step) => (step.kind === 'write' ? step.data.length : step.length));
    if (this.faults.hit(this.id, 'stuck-bus')) {
      const sdaLow = this.behaviour.sdaLow;
      if (sdaLow !== 'reads-zero') return this.fail(sdaLow, what, target, `bus ${this.id} is stuck (SDA held low)`);
      await this.occupy(addr, messages);
      const read = transactions.find((step) => step.kind === 'read');
      return Buffer.alloc(read?.kind === 'read' ? read.length : 0);
    }
    const device = this.devices.get(addr);
    if (!device || this.faults.hit(device.faultTarget, 'nack')) {
      // The address byte goes out unacknowledged, then STOP.
      await this.occupy(addr, [0]);
      return this.fail({ errno: this.behaviour.nack, afterMs: 0 }, what, target, 'no acknowledge');
    }
    if (this.faults.hit(device.faultTarget, 'bus-timeout')) {
      return this.fail(this.behaviour.stretched, what, target, 'the chip held SCL low');
    }
    await this.occupy(addr, messages);
    if (this.closed) throw new HalClosedError(`${what} on closed bus ${this.id}`, { target, canceled: true });
    let result = Buffer.alloc(0);
    for (const step of transactions) {
      this.transfers += 1;
      if (step.kind === 'write') device.model.write(step.data);
      else result = Buffer.from(device.model.read(step.length));
    }
    return result;
  }

  async readByte(addr: number, cmd: number, opts?: I2cTransferOptions): Promise<number> {
    const data = await this.run(addr, 'read byte', [{ kind: 'write', data: Buffer.of(cmd) }, { kind: 'read', length: 1 }], opts);
    return data[0] ?? 0xff;
  }

  async writeByte(addr: number, cmd: number, value: number, opts?: I2cTransferOptions): Promise<void> {
    await this.run(addr, 'write byte', [{ kind: 'write', data: Buffer.of(cmd, value & 0xff) }], opts);
  }

  async readWord(addr: number, cmd: number, order: ByteOrder, opts?: I2cTransferOptions): Promise<number> {
    const data = await this.run(addr, 'read word', [{ kind: 'write', data: Buffer.of(cmd) }, { kind: 'read', length: 2 }], opts);
    return order === 'be' ? data.readUInt16BE(0) : data.readUInt16LE(0);
  }

  async writeWord(addr: number, cmd: number, value: number, order: ByteOrder, opts?: I2cTransferOptions): Promise<void> {
    const data = Buffer.alloc(3);
    data[0] = cmd;
    if (order === 'be') data.writeUInt16BE(value & 0xffff, 1);
    else data.writeUInt16LE(value & 0xffff, 1);
    await this.run(addr, 'write word', [{ kind: 'write', data }], opts);
  }

  async readBlock(addr: number, cmd: number, length: number, opts?: I2cTransferOptions): Promise<Buffer> {
    checkBlockLength(this.id, addr, length);
    return this.run(addr, 'read block', [{ kind: 'write', data: Buffer.of(cmd) }, { kind: 'read', length }], opts);
  }

  async writeBlock(addr: number, cmd: number, data: Buffer, opts?: I2cTransferOptions): Promise<void> {
    checkBlockLength(this.id, addr, data.length);
    await this.run(addr, 'write block', [{ kind: 'write', data: Buffer.concat([Buffer.of(cmd), data]) }], opts);
  }

  read(addr: number, length: number, opts?: I2cTransferOptions): Promise<Buffer> {
    return this.run(addr, 'read', [{ kind: 'read', length }], opts);
  }

  async write(addr: number, data: Buffer, opts?: I2cTransferOptions): Promise<void> {
    await this.run(addr, 'write', [{ kind: 'write', data: Buffer.from(data) }], opts);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The transfer holding the bus after its caller gave up, for status displays and tests. */
  held(): ReturnType<I2cTransferQueue['held']> {
    return this.queue.held();
  }
}

function countTransfer(count: I2cTrafficCount, bytes: number, wireMs: number): void {
  count.transfers += 1;
  count.bytes += bytes;
  count.wireMs += wireMs;
}

function checkAddress(busId: string, addr: number): void {
  if (!Number.isInteger(addr) || addr < 0x03 || addr > 0x77) {
    throw new HalInvalidArgumentError(`I2C address ${String(addr)} on ${busId} is outside 0x03-0x77`, { target: busId });
  }
}

function checkBlockLength(busId: string, addr: number, length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > 32) {
    throw new HalInvalidArgumentError(`I2C block length ${length} is outside 1-32`, { target: i2cTarget(busId, addr) });
  }
}
