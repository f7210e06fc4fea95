/**
 * A simulated I2C bus. Chip models sit behind addresses and see the bus as a real chip does: write
 * transactions (usually a register pointer, then data) and read transactions (bytes clocked out from
 * the pointer). SMBus calls are split into those transactions here, exactly as the Linux i2c-dev
 * layer puts them on the wire, so drivers run unchanged against the models.
 */
import type { Clock } from '../hal/clock.js';
import { withDeadline } from '../hal/deadline.js';
import { HalBusBusyError, HalClosedError, HalInvalidArgumentError, HalNackError, HalTimeoutError } from '../hal/errors.js';
import { type ByteOrder, type I2cBus, type I2cTransferOptions, i2cTarget } from '../hal/i2c.js';
import type { FaultRegistry } from './faults.js';

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

export const i2cBusFaultKinds = [{ kind: 'stuck-bus' as const, description: 'SDA held low: every transfer on the bus fails busy' }];
export const i2cDeviceFaultKinds = [
  { kind: 'nack' as const, description: 'the chip does not acknowledge its address (EREMOTEIO)' },
  { kind: 'bus-timeout' as const, description: 'the transfer never completes (clock stretched forever)' },
];

export class SimI2cBus implements I2cBus {
  private readonly devices = new Map<number, Attached>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Transactions that reached a device, for tests that check what went over the wire. */
  transfers = 0;

  constructor(
    readonly id: string,
    private readonly clock: Clock,
    private readonly faults: FaultRegistry,
    readonly defaultTimeoutMs = 50,
  ) {
    faults.register(id, i2cBusFaultKinds);
  }

  attach(address: number, model: I2cDeviceModel, faultTarget: string): void {
    checkAddress(this.id, address);
    if (this.devices.has(address)) {
      throw new HalInvalidArgumentError(`address 0x${address.toString(16)} on ${this.id} is already taken`, { target: i2cTarget(this.id, address) });
    }
    this.devices.set(address, { model, faultTarget });
    this.faults.register(faultTarget, i2cDeviceFaultKinds);
  }

  private run(addr: number, what: string, transactions: Transaction[], opts: I2cTransferOptions | undefined): Promise<Buffer> {
    const target = i2cTarget(this.id, addr);
    if (this.closed) return Promise.reject(new HalClosedError(`${what} on closed bus ${this.id}`, { target, canceled: true }));
    try {
      checkAddress(this.id, addr);
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = opts?.timeoutMs ?? this.defaultTimeoutMs;
    const transfer = this.queue.then(() => this.execute(addr, target, what, transactions));
    this.queue = transfer.catch(() => undefined);
    return withDeadline(this.clock, transfer, what, target, { timeoutMs, signal: opts?.signal });
  }

  private execute(addr: number, target: string, what: string, transactions: Transaction[]): Promise<Buffer> {
    if (this.closed) return Promise.reject(new HalClosedError(`${what} on closed bus ${this.id}`, { target, canceled: true }));
    if (this.faults.hit(this.id, 'stuck-bus')) {
      return Promise.reject(new HalBusBusyError(`${what} on ${target}: bus ${this.id} is stuck (SDA held low)`, { target, errno: 'EAGAIN' }));
    }
    const device = this.devices.get(addr);
    if (!device || this.faults.hit(device.faultTarget, 'nack')) {
      return Promise.reject(new HalNackError(`${what} on ${target}: no acknowledge`, { target, errno: 'EREMOTEIO' }));
    }
    if (this.faults.hit(device.faultTarget, 'bus-timeout')) {
      // The adapter holds the bus until its own timeout (a property of the adapter, not of the caller)
      // and then gives up, like the kernel driver returning ETIMEDOUT; the caller's deadline may fire first.
      return this.clock
        .sleep(this.defaultTimeoutMs)
        .then(() => Promise.reject(new HalTimeoutError(`${what} on ${target} timed out`, { target, errno: 'ETIMEDOUT' })));
    }
    return new Promise((resolve, reject) => {
      process.nextTick(() => {
        try {
          let result = Buffer.alloc(0);
          for (const step of transactions) {
            this.transfers += 1;
            if (step.kind === 'write') device.model.write(step.data);
            else result = Buffer.from(device.model.read(step.length));
          }
          resolve(result);
        } catch (err) {
          reject(err);
        }
      });
    });
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
