/**
 * I2C buses on Linux through i2c-bus (the i2c-dev character devices /dev/i2c-N). The adapter keeps
 * the rules of hal/i2c.ts: one transfer at a time per bus in call order, every transfer under a
 * deadline counted from the call, kernel errno mapped to HalError codes, SMBus words byte-swapped
 * for big-endian chips.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Clock } from '../clock.js';
import { withDeadline } from '../deadline.js';
import {
  HalBusBusyError,
  HalClosedError,
  type HalError,
  HalInvalidArgumentError,
  HalIoError,
  HalNackError,
  HalNotFoundError,
  HalPermissionError,
  halErrorFromErrno,
} from '../errors.js';
import { type ByteOrder, type I2cBus, type I2cTransferOptions, i2cTarget } from '../i2c.js';
import type { I2cBusConfig } from '../../config/board-config.js';
import { type ModuleLoader, importPackage, loadOptional, moduleMember } from './optional.js';

/** The part of i2c-bus's promisified bus (`openPromisified`) this adapter uses. */
export interface I2cBusHandle {
  readByte(addr: number, cmd: number): Promise<number>;
  writeByte(addr: number, cmd: number, byte: number): Promise<void>;
  /** SMBus read word data: the low byte comes first on the wire. */
  readWord(addr: number, cmd: number): Promise<number>;
  writeWord(addr: number, cmd: number, word: number): Promise<void>;
  readI2cBlock(addr: number, cmd: number, length: number, buffer: Buffer): Promise<{ bytesRead: number; buffer: Buffer }>;
  writeI2cBlock(addr: number, cmd: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number; buffer: Buffer }>;
  i2cRead(addr: number, length: number, buffer: Buffer): Promise<{ bytesRead: number; buffer: Buffer }>;
  i2cWrite(addr: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number; buffer: Buffer }>;
  close(): Promise<void>;
}

export interface LinuxI2cBusOptions {
  clock: Clock;
  /** Default 50 ms, as in the board entry. */
  defaultTimeoutMs?: number;
  /** Pause before the one retry after a NACK. Default 5 ms. */
  nackRetryDelayMs?: number;
}

/** The longest raw read or write i2c-dev performs in one call. */
const maxRawLength = 8192;

interface TransferState {
  abandoned: boolean;
}

export class LinuxI2cBus implements I2cBus {
  readonly defaultTimeoutMs: number;
  private readonly clock: Clock;
  private readonly nackRetryDelayMs: number;
  private handle: Promise<I2cBusHandle> | undefined;
  private readonly openHandle: (() => Promise<I2cBusHandle>) | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private closing: Promise<void> | undefined;

  /**
   * `handle` is an i2c-bus promisified bus, or a factory that opens one on the first transfer (in
   * the queue and under that transfer's deadline).
   */
  constructor(
    readonly id: string,
    handle: I2cBusHandle | (() => Promise<I2cBusHandle>),
    options: LinuxI2cBusOptions,
  ) {
    this.clock = options.clock;
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 50;
    this.nackRetryDelayMs = options.nackRetryDelayMs ?? 5;
    if (typeof handle === 'function') this.openHandle = handle;
    else this.handle = Promise.resolve(handle);
  }

  private getHandle(): Promise<I2cBusHandle> {
    if (!this.handle) {
      const opening = (this.openHandle as () => Promise<I2cBusHandle>)();
      this.handle = opening;
      opening.catch(() => {
        if (this.handle === opening) this.handle = undefined;
      });
    }
    return this.handle;
  }

  private run<T>(addr: number, what: string, op: (h: I2cBusHandle) => Promise<T>, opts: I2cTransferOptions | undefined, check?: () => void): Promise<T> {
    const target = i2cTarget(this.id, addr);
    if (this.closed) return Promise.reject(new HalClosedError(`${what} on closed bus ${this.id}`, { target, canceled: true }));
    try {
      checkRange(target, 'address', addr, 0x03, 0x77);
      check?.();
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = opts?.timeoutMs ?? this.defaultTimeoutMs;
    const state: TransferState = { abandoned: false };
    const transfer = this.queue.then(() => this.execute(target, what, op, state));
    this.queue = transfer.catch(() => undefined);
    return withDeadline(this.clock, transfer, what, target, { timeoutMs, signal: opts?.signal }).catch((err: unknown) => {
      // A caller that gave up must not see its transfer run later: a write it was told failed
      // would otherwise still reach the chip.
      state.abandoned = true;
      throw err;
    });
  }

  /**
   * NACK retry policy: a NACK is retried once, after `nackRetryDelayMs`, inside the same queue slot.
   * Chips legitimately NACK for a few milliseconds while busy (a 24Cxx-style EEPROM such as an SFP
   * module's during its write cycle, up to 5 ms), and one retry rides that out; a chip that is
   * absent or dead NACKs twice and fails. Nothing else is retried: a timeout or busy bus would only
   * make the queue behind it wait longer.
   */
  private async execute<T>(target: string, what: string, op: (h: I2cBusHandle) => Promise<T>, state: TransferState): Promise<T> {
    const skipped = (): HalError | undefined =>
      this.closed
        ? new HalClosedError(`${what} on ${target}: bus ${this.id} closed before the transfer started`, { target, canceled: true })
        : state.abandoned
          ? new HalClosedError(`${what} on ${target} abandoned by its caller`, { target, canceled: true })
          : undefined;
    const before = skipped();
    if (before) throw before;
    let handle: I2cBusHandle;
    try {
      handle = await this.getHandle();
    } catch (err) {
      throw halErrorFromErrno(err, `open ${this.id} for ${what}`, target);
    }
    try {
      return await op(handle);
    } catch (err) {
      const mapped = halErrorFromErrno(err, what, target);
      if (mapped instanceof HalBusBusyError) return this.recover(target, what, op, mapped, skipped);
      if (!(mapped instanceof HalNackError)) throw mapped;
      await this.clock.sleep(this.nackRetryDelayMs);
      if (skipped()) throw mapped;
      try {
        return await op(handle);
      } catch (retryErr) {
        throw halErrorFromErrno(retryErr, `${what} (retried after NACK)`, target);
      }
    }
  }

  /**
   * Stuck-bus recovery, attempted once before the transfer fails: close the adapter's file and open
   * it again (only when this bus opens its own handle), which lets adapter drivers that implement
   * bus recovery (i2c_recover_bus: nine SCL pulses and a STOP) run it on the next transfer, and
   * clears a handle left in a bad state. A bus still busy after that fails with ERR_HAL_BUS_BUSY, and
   * the component using it is marked failed.
   */
  private async recover<T>(
    target: string,
    what: string,
    op: (h: I2cBusHandle) => Promise<T>,
    busy: HalBusBusyError,
    skipped: () => HalError | undefined,
  ): Promise<T> {
    if (!this.openHandle || skipped()) throw busy;
    const stale = this.handle;
    this.handle = undefined;
    await (await stale?.catch(() => undefined))?.close().catch(() => undefined);
    let handle: I2cBusHandle;
    try {
      handle = await this.getHandle();
    } catch (err) {
      throw halErrorFromErrno(err, `reopen ${this.id} to recover a stuck bus`, target);
    }
    try {
      return await op(handle);
    } catch (err) {
      throw halErrorFromErrno(err, `${what} (after reopening ${this.id} to recover a stuck bus)`, target);
    }
  }

  readByte(addr: number, cmd: number, opts?: I2cTransferOptions): Promise<number> {
    return this.run(addr, 'read byte', (h) => h.readByte(addr, cmd), opts, () => checkRange(i2cTarget(this.id, addr), 'command', cmd, 0, 0xff));
  }

  async writeByte(addr: number, cmd: number, value: number, opts?: I2cTransferOptions): Promise<void> {
    const target = i2cTarget(this.id, addr);
    await this.run(addr, 'write byte', (h) => h.writeByte(addr, cmd, value), opts, () => {
      checkRange(target, 'command', cmd, 0, 0xff);
      checkRange(target, 'byte', value, 0, 0xff);
    });
  }

  async readWord(addr: number, cmd: number, order: ByteOrder, opts?: I2cTransferOptions): Promise<number> {
    const word = await this.run(addr, 'read word', (h) => h.readWord(addr, cmd), opts, () =>
      checkRange(i2cTarget(this.id, addr), 'command', cmd, 0, 0xff),
    );
    return order === 'be' ? swap16(word) : word;
  }

  async writeWord(addr: number, cmd: number, value: number, order: ByteOrder, opts?: I2cTransferOptions): Promise<void> {
    const target = i2cTarget(this.id, addr);
    await this.run(addr, 'write word', (h) => h.writeWord(addr, cmd, order === 'be' ? swap16(value) : value), opts, () => {
      checkRange(target, 'command', cmd, 0, 0xff);
      checkRange(target, 'word', value, 0, 0xffff);
    });
  }

  readBlock(addr: number, cmd: number, length: number, opts?: I2cTransferOptions): Promise<Buffer> {
    const target = i2cTarget(this.id, addr);
    return this.run(
      addr,
      'read block',
      async (h) => {
        const { bytesRead, buffer } = await h.readI2cBlock(addr, cmd, length, Buffer.alloc(length));
        return complete(target, 'read block', bytesRead, length, buffer);
      },
      opts,
      () => {
        checkRange(target, 'command', cmd, 0, 0xff);
        checkRange(target, 'block length', length, 1, 32);
      },
    );
  }

  async writeBlock(addr: number, cmd: number, data: Buffer, opts?: I2cTransferOptions): Promise<void> {
    const target = i2cTarget(this.id, addr);
    const copy = Buffer.from(data);
    await this.run(
      addr,
      'write block',
      async (h) => {
        const { bytesWritten } = await h.writeI2cBlock(addr, cmd, copy.length, copy);
        complete(target, 'write block', bytesWritten, copy.length, copy);
      },
      opts,
      () => {
        checkRange(target, 'command', cmd, 0, 0xff);
        checkRange(target, 'block length', copy.length, 1, 32);
      },
    );
  }

  read(addr: number, length: number, opts?: I2cTransferOptions): Promise<Buffer> {
    const target = i2cTarget(this.id, addr);
    return this.run(
      addr,
      'read',
      async (h) => {
        const { bytesRead, buffer } = await h.i2cRead(addr, length, Buffer.alloc(length));
        return complete(target, 'read', bytesRead, length, buffer);
      },
      opts,
      () => checkRange(target, 'read length', length, 1, maxRawLength),
    );
  }

  async write(addr: number, data: Buffer, opts?: I2cTransferOptions): Promise<void> {
    const target = i2cTarget(this.id, addr);
    const copy = Buffer.from(data);
    await this.run(
      addr,
      'write',
      async (h) => {
        const { bytesWritten } = await h.i2cWrite(addr, copy.length, copy);
        complete(target, 'write', bytesWritten, copy.length, copy);
      },
      opts,
      () => checkRange(target, 'write length', copy.length, 1, maxRawLength),
    );
  }

  /**
   * Queued transfers reject with ERR_HAL_CLOSED; the one in the kernel is given the bus timeout to
   * finish before the file descriptors are closed under it.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      let timer: { cancel(): void } | undefined;
      await Promise.race([this.queue, new Promise<void>((resolve) => (timer = this.clock.setTimeout(resolve, this.defaultTimeoutMs)))]);
      timer?.cancel();
      const handle = await this.handle?.catch(() => undefined);
      if (!handle) return;
      try {
        await handle.close();
      } catch (err) {
        throw halErrorFromErrno(err, 'close', this.id);
      }
    })();
    return this.closing;
  }
}

function swap16(word: number): number {
  return ((word & 0xff) << 8) | ((word >> 8) & 0xff);
}

function checkRange(target: string, field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const hex = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;
    throw new HalInvalidArgumentError(`${field} ${Number.isInteger(value) ? hex(value) : String(value)} for ${target} is outside ${hex(min)}-${hex(max)}`, {
      target,
    });
  }
}

function complete(target: string, what: string, done: number, wanted: number, buffer: Buffer): Buffer {
  if (done !== wanted) throw new HalIoError(`${what} on ${target} transferred ${done} of ${wanted} bytes`, { target });
  return buffer.subarray(0, wanted);
}

export interface OpenLinuxI2cBusOptions extends LinuxI2cBusOptions {
  /** How to import i2c-bus. Default `import('i2c-bus')`. */
  load?: ModuleLoader;
}

type OpenPromisified = (busNumber: number) => Promise<I2cBusHandle>;

/**
 * Opens the bus of a board entry: checks that its device exists and is accessible, then loads
 * i2c-bus. The check is here because i2c-bus opens the device only on the first transfer, so a
 * disabled adapter or a missing `i2c` group membership would otherwise surface at the first
 * diagnosis as a failed chip instead of at start-up as a misconfigured board.
 */
export async function openLinuxI2cBus(config: I2cBusConfig, options: OpenLinuxI2cBusOptions): Promise<LinuxI2cBus> {
  const match = /(?:^|\/)i2c-(\d+)$/.exec(config.device);
  if (match?.[1] === undefined) {
    throw new HalInvalidArgumentError(
      `I2C bus ${config.id}: device ${JSON.stringify(config.device)} is not an i2c-dev path of the form /dev/i2c-N`,
      { target: config.id },
    );
  }
  const busNumber = Number(match[1]);
  try {
    await access(config.device, constants.R_OK | constants.W_OK);
  } catch (err) {
    const errno = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
    if (errno === 'ENOENT') {
      throw new HalNotFoundError(
        `I2C bus ${config.id}: ${config.device} does not exist; enable the adapter (dtparam=i2c_arm=on in config.txt, or raspi-config) and load i2c-dev`,
        { target: config.id, errno, cause: err },
      );
    }
    if (errno === 'EACCES' || errno === 'EPERM') {
      throw new HalPermissionError(
        `I2C bus ${config.id}: no read/write access to ${config.device}; run as a member of the \`i2c\` group (sudo usermod -aG i2c $USER)`,
        { target: config.id, errno, cause: err },
      );
    }
    throw halErrorFromErrno(err, 'open', config.id);
  }
  const openPromisified = await loadOptional<OpenPromisified>('i2c-bus', 'the Linux I2C backend', options.load ?? importPackage('i2c-bus'), (mod) => {
    const fn = moduleMember(mod, 'openPromisified');
    return typeof fn === 'function' ? (fn as OpenPromisified) : undefined;
  });
  let handle: I2cBusHandle;
  try {
    handle = await openPromisified(busNumber);
  } catch (err) {
    throw halErrorFromErrno(err, 'open', config.id);
  }
  return new LinuxI2cBus(config.id, handle, { ...options, defaultTimeoutMs: config.timeoutMs ?? options.defaultTimeoutMs });
}
