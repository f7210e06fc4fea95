/**
 * A simulated I2C bus. Chip models sit behind addresses and see the bus as a real chip does: write
 * transactions (usually a register pointer, then data) and read transactions (bytes clocked out from
 * the pointer). SMBus calls are split into those transactions here, exactly as the Linux i2c-dev
 * layer puts them on the wire, so drivers run unchanged against the models.
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

export interface SimI2cBusOptions {
  /** Default 50 ms. */
  defaultTimeoutMs?: number;
  /** Default `generic`. */
  adapter?: I2cAdapterKind;
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

  constructor(
    readonly id: string,
    private readonly clock: Clock,
    private readonly faults: FaultRegistry,
    options: SimI2cBusOptions = {},
  ) {
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 50;
    this.adapter = options.adapter ?? 'generic';
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

  private async execute(addr: number, target: string, what: string, transactions: Transaction[]): Promise<Buffer> {
    if (this.closed) throw new HalClosedError(`${what} on closed bus ${this.id}`, { target, canceled: true });
    await new Promise((resolve) => process.nextTick(resolve));
    if (this.faults.hit(this.id, 'stuck-bus')) {
      const sdaLow = this.behaviour.sdaLow;
      if (sdaLow !== 'reads-zero') return this.fail(sdaLow, what, target, `bus ${this.id} is stuck (SDA held low)`);
      const read = transactions.find((step) => step.kind === 'read');
      return Buffer.alloc(read?.kind === 'read' ? read.length : 0);
    }
    const device = this.devices.get(addr);
    if (!device || this.faults.hit(device.faultTarget, 'nack')) {
      return this.fail({ errno: this.behaviour.nack, afterMs: 0 }, what, target, 'no acknowledge');
    }
    if (this.faults.hit(device.faultTarget, 'bus-timeout')) {
      return this.fail(this.behaviour.stretched, what, target, 'the chip held SCL low');
    }
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
