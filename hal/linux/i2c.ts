/**
 * I2C buses on Linux through i2c-bus (the i2c-dev character devices /dev/i2c-N). The adapter keeps
 * the rules of hal/i2c.ts: one transfer at a time per bus in call order, every transfer under a
 * deadline counted from the call, kernel errno mapped to HalError codes, SMBus words byte-swapped
 * for big-endian chips.
 *
 * There is no bus recovery here: the Pi's i2c-bcm2835 driver has none (no bus_recovery_info), and
 * closing and reopening /dev/i2c-N only reopens a file - the adapter, and a chip holding SDA low,
 * are unchanged. A stuck bus fails its components until the chip lets go or is power-cycled.
 */
import { constants } from 'node:fs';
import { access, readFile, readlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Clock } from '../clock.js';
import {
  HalAddressInUseError,
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
import { type HeldTransfer, I2cTransferQueue, type TransferState } from '../i2c-queue.js';
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
  /** The adapter number N of /dev/i2c-N, to name the kernel driver holding an address. */
  busNumber?: number;
  /** Default /sys/bus/i2c/devices. */
  sysfsDevices?: string;
  /**
   * How often an address this bus already selected is checked for a kernel driver bound since
   * (sysfs N-00AA/driver), on the clock. Default 1000 ms. Needs `busNumber`.
   */
  boundCheckMs?: number;
}

/** The longest raw read or write i2c-dev performs in one call. */
const maxRawLength = 8192;

export class LinuxI2cBus implements I2cBus {
  readonly defaultTimeoutMs: number;
  private readonly clock: Clock;
  private readonly nackRetryDelayMs: number;
  private readonly busNumber: number | undefined;
  private readonly sysfsDevices: string;
  private readonly queue: I2cTransferQueue;
  /** Addresses a kernel driver owns, with the error that found out; see `addressInUse`. */
  private readonly owned = new Map<number, HalAddressInUseError>();
  private readonly boundCheckMs: number;
  /** Addresses i2c-bus has selected (a transfer to them went through), so i2c-dev checks them no more. */
  private readonly selected = new Set<number>();
  /** The last look at sysfs for a kernel driver bound to a selected address; see `boundSinceSelected`. */
  private readonly boundChecks = new Map<number, { at: number; holder: string | undefined }>();
  private closed = false;
  private closing: Promise<void> | undefined;

  /** `handle` is an i2c-bus promisified bus. */
  constructor(
    readonly id: string,
    private readonly handle: I2cBusHandle,
    options: LinuxI2cBusOptions,
  ) {
    this.clock = options.clock;
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 50;
    this.nackRetryDelayMs = options.nackRetryDelayMs ?? 5;
    this.busNumber = options.busNumber;
    this.sysfsDevices = options.sysfsDevices ?? '/sys/bus/i2c/devices';
    this.boundCheckMs = options.boundCheckMs ?? 1000;
    this.queue = new I2cTransferQueue(this.clock, id);
  }

  /** The transfer holding the bus after its caller gave up (the kernel has not ended it yet). */
  held(): HeldTransfer | undefined {
    return this.queue.held();
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
    const owned = this.owned.get(addr);
    if (owned) return Promise.reject(owned);
    return this.queue.run(target, what, (state) => this.execute(addr, target, what, op, state), {
      timeoutMs: opts?.timeoutMs ?? this.defaultTimeoutMs,
      signal: opts?.signal,
    });
  }

  /**
   * NACK retry policy: a NACK is retried once, after `nackRetryDelayMs`, inside the same queue slot.
   * Chips legitimately NACK for a few milliseconds while busy (a 24Cxx-style EEPROM such as an SFP
   * module's during its write cycle, up to 5 ms), and one retry rides that out; a chip that is
   * absent or dead NACKs twice and fails. Nothing else is retried: a timeout or busy bus would only
   * make the queue behind it wait longer.
   */
  private async execute<T>(addr: number, target: string, what: string, op: (h: I2cBusHandle) => Promise<T>, state: TransferState): Promise<T> {
    const skipped = (): HalError | undefined =>
      this.closed
        ? new HalClosedError(`${what} on ${target}: bus ${this.id} closed before the transfer started`, { target, canceled: true })
        : state.abandoned
          ? new HalClosedError(`${what} on ${target} abandoned by its caller`, { target, canceled: true })
          : undefined;
    const before = skipped();
    if (before) throw before;
    const bound = await this.boundSinceSelected(addr, target, what);
    if (bound) throw bound;
    try {
      const result = await op(this.handle);
      this.selected.add(addr);
      return result;
    } catch (err) {
      if (isAddressOwned(err)) throw await this.addressInUse(addr, target, what, err);
      const mapped = halErrorFromErrno(err, what, target);
      if (!(mapped instanceof HalNackError)) throw mapped;
      await this.clock.sleep(this.nackRetryDelayMs);
      if (skipped()) throw mapped;
      try {
        const result = await op(this.handle);
        this.selected.add(addr);
        return result;
      } catch (retryErr) {
        throw halErrorFromErrno(retryErr, `${what} (retried after NACK)`, target);
      }
    }
  }

  /**
   * i2c-bus keeps the file it opened for an address even when selecting the address failed, and
   * would send the next transfer on that file to whatever address it has (none selected: 0x00, the
   * general call). So an owned address stays refused here, without touching the bus, until the
   * firmware restarts. The driver is named from sysfs (N-00AA/driver) when the bus number is known.
   */
  private async addressInUse(addr: number, target: string, what: string, err: unknown): Promise<HalAddressInUseError> {
    const holder = await this.holder(addr);
    const error = new HalAddressInUseError(
      `${what} on ${target}: a kernel driver${holder === undefined ? '' : ` (${holder})`} holds the address, so i2c-dev refuses it (EBUSY); the bus is not stuck. Remove the kernel's device or its overlay and restart, or read the chip through that driver`,
      { target, errno: 'EBUSY', cause: err },
    );
    this.owned.set(addr, error);
    return error;
  }

  /**
   * i2c-dev checks an address for a kernel driver only when it is selected (I2C_SLAVE,
   * i2cdev_check_addr), and i2c-bus selects it once per address: a driver bound after that
   * (`new_device`, a `dtoverlay` applied at run time) would share the chip with the firmware unseen -
   * the kernel's tmp102_probe rewrites the configuration, tmp102_remove restores it. So an address
   * this bus already selected is looked up in sysfs for a bound driver, the condition i2cdev_check
   * tests, at most every `boundCheckMs`, and refused while one is bound. Unlike a failed selection
   * this heals: the file is still selected, so once the device is deleted the transfers go on. No
   * errno: the kernel refused nothing.
   */
  private async boundSinceSelected(addr: number, target: string, what: string): Promise<HalAddressInUseError | undefined> {
    if (this.busNumber === undefined || !this.selected.has(addr)) return undefined;
    const now = this.clock.now();
    let check = this.boundChecks.get(addr);
    if (check === undefined || now - check.at >= this.boundCheckMs) {
      check = { at: now, holder: await this.holder(addr) };
      this.boundChecks.set(addr, check);
    }
    if (check.holder === undefined) return undefined;
    return new HalAddressInUseError(
      `${what} on ${target}: a kernel driver (${check.holder}) was bound to the address while the firmware used it (${this.deviceDir(addr)}/driver), so the chip is not the firmware's alone and i2c-dev refuses the address to any new opener (EBUSY); the bus is not stuck. Remove the kernel's device or its overlay, or read the chip through that driver`,
      { target },
    );
  }

  private deviceDir(addr: number): string {
    return join(this.sysfsDevices, `${this.busNumber}-${addr.toString(16).padStart(4, '0')}`);
  }

  /** The kernel driver bound to `addr` (and its device's name when that differs), from sysfs. */
  private async holder(addr: number): Promise<string | undefined> {
    if (this.busNumber === undefined) return undefined;
    const device = this.deviceDir(addr);
    const driver = await readlink(join(device, 'driver')).then(basename, () => undefined);
    if (driver === undefined) return undefined;
    const name = (await readFile(join(device, 'name'), 'utf8').catch(() => '')).trim();
    return `${driver}${name && name !== driver ? `, device ${name}` : ''}`;
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
      await Promise.race([this.queue.idle(), new Promise<void>((resolve) => (timer = this.clock.setTimeout(resolve, this.defaultTimeoutMs)))]);
      timer?.cancel();
      try {
        await this.handle.close();
      } catch (err) {
        throw halErrorFromErrno(err, 'close', this.id);
      }
    })();
    return this.closing;
  }
}

/**
 * i2c-bus selects the address with ioctl(I2C_SLAVE) before the first transfer to it and reports a
 * failure there with syscall "setAddr"; i2c-dev answers EBUSY only when a kernel driver is bound to
 * the address (i2cdev_ioctl, i2cdev_check_addr in drivers/i2c/i2c-dev.c).
 */
function isAddressOwned(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, syscall } = err as { code?: unknown; syscall?: unknown };
  return code === 'EBUSY' && syscall === 'setAddr';
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
  return new LinuxI2cBus(config.id, handle, { busNumber, ...options, defaultTimeoutMs: config.timeoutMs ?? options.defaultTimeoutMs });
}
