/**
 * The hardware watchdog through /dev/watchdog. Opening the device arms it, any write kicks it, and
 * writing 'V' before closing is the magic close that disarms drivers which honour it.
 *
 * With the native addon (hal/linux/ioctl.ts) the watchdog is driven by its ioctls: WDIOC_GETSUPPORT,
 * GETTIMEOUT, SETTIMEOUT, GETTIMELEFT and GETBOOTSTATUS (drivers/watchdog/watchdog_dev.c). Without it,
 * or when the device is not a watchdog character device (ENOTTY: a test's FIFO), the same facts come
 * from the watchdog class in sysfs (/sys/class/watchdog/watchdogN/{identity,timeout,timeleft,
 * bootstatus}, CONFIG_WATCHDOG_SYSFS), and `setTimeout` only accepts the timeout already in force.
 */
import { constants } from 'node:fs';
import { type FileHandle, open, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { HalClosedError, type HalError, HalInvalidArgumentError, HalUnsupportedError, errnoOf, halErrorFromErrno } from '../errors.js';
import type { Watchdog, WatchdogInfo } from '../watchdog.js';
import { type IoctlBinding, ioctlAddon } from './ioctl.js';

export const defaultWatchdogSysfsRoot = '/sys/class/watchdog';

export interface LinuxWatchdogOptions {
  /** The watchdog class directory. Default /sys/class/watchdog; tests lay out a fake tree. */
  sysfsRoot?: string;
  /** The ioctl addon; default the built one, null for sysfs only. */
  ioctl?: IoctlBinding | null;
}

/** The kick: the kernel only counts the write, and a byte other than 'V' cancels a pending magic close. */
const kickByte = Buffer.of(0);
const magicByte = Buffer.from('V');

/**
 * `/dev/watchdogN` is watchdogN in sysfs; the legacy `/dev/watchdog` (and any device name without a
 * trailing number, such as a test's stand-in file) is the first watchdog, watchdog0.
 */
export function watchdogSysfsName(devicePath: string): string {
  const index = /(\d+)$/.exec(basename(devicePath))?.[1] ?? '0';
  return `watchdog${index}`;
}

export class LinuxWatchdog implements Watchdog {
  readonly target: string;
  private readonly sysfsDir: string;
  private fd: FileHandle | undefined;
  private info: WatchdogInfo | undefined;
  private closed = false;
  private opening: Promise<WatchdogInfo> | undefined;
  private readonly addon: IoctlBinding | undefined;
  /** The addon, while the open device answers watchdog ioctls. */
  private ioctl: IoctlBinding | undefined;

  constructor(
    private readonly device: string,
    options: LinuxWatchdogOptions = {},
  ) {
    this.target = `watchdog:${device}`;
    this.sysfsDir = join(options.sysfsRoot ?? defaultWatchdogSysfsRoot, watchdogSysfsName(device));
    this.addon = options.ioctl === null ? undefined : (options.ioctl ?? ioctlAddon());
  }

  /** Runs an ioctl of the addon on the open device; errno errors become HalErrors. */
  private call<T>(operation: string, run: (addon: IoctlBinding, fd: number) => T): T {
    const fd = this.fd;
    if (!fd || !this.ioctl) throw this.closedError(operation);
    try {
      return run(this.ioctl, fd.fd);
    } catch (err) {
      throw halErrorFromErrno(err, operation, this.target);
    }
  }

  private async readAttribute(name: string, operation: string): Promise<string> {
    const path = join(this.sysfsDir, name);
    try {
      return (await readFile(path, 'utf8')).trim();
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') {
        const why =
          name === 'timeleft'
            ? 'the driver does not report the time left (no WDIOC_GETTIMELEFT)'
            : 'the kernel exposes no watchdog sysfs attributes (CONFIG_WATCHDOG_SYSFS) and Node cannot issue the ioctl';
        throw new HalUnsupportedError(`${operation} on ${this.target}: ${path} does not exist: ${why}`, {
          target: this.target,
          errno: 'ENOENT',
          cause: err,
        });
      }
      throw halErrorFromErrno(err, operation, this.target);
    }
  }

  private async readSeconds(name: string, operation: string): Promise<number> {
    const text = await this.readAttribute(name, operation);
    const seconds = Number(text);
    if (!Number.isInteger(seconds) || seconds < 0) {
      throw new HalUnsupportedError(`${operation} on ${this.target}: ${join(this.sysfsDir, name)} holds ${JSON.stringify(text)}, not seconds`, {
        target: this.target,
      });
    }
    return seconds;
  }

  private closedError(operation: string): HalError {
    return this.closed
      ? new HalClosedError(`${operation} on closed ${this.target}`, { target: this.target, canceled: true })
      : new HalClosedError(`${operation} on ${this.target}, which is not open`, { target: this.target });
  }

  /** The sysfs bootstatus attribute, where the kernel has one. */
  private async sysfsBootStatus(): Promise<number | undefined> {
    const text = await readFile(join(this.sysfsDir, 'bootstatus'), 'utf8').catch(() => undefined);
    const value = text === undefined ? Number.NaN : Number(text.trim());
    return Number.isInteger(value) ? value : undefined;
  }

  private async openDevice(): Promise<FileHandle> {
    try {
      // No O_CREAT: a missing device must fail, not become a regular file that nothing watches.
      return await open(this.device, constants.O_WRONLY);
    } catch (err) {
      throw halErrorFromErrno(err, 'open', this.target);
    }
  }

  /** Identity, timeout and boot status by ioctl; undefined when the device is no watchdog (ENOTTY). */
  private ioctlInfo(addon: IoctlBinding, fd: number): WatchdogInfo | undefined {
    try {
      const { identity } = addon.wdtGetSupport(fd);
      return { identity, timeoutS: addon.wdtGetTimeout(fd), bootStatus: addon.wdtGetBootStatus(fd) };
    } catch (err) {
      if (errnoOf(err) === 'ENOTTY') return undefined;
      throw halErrorFromErrno(err, 'open', this.target);
    }
  }

  /**
   * Without the addon, reads identity and timeout from sysfs before opening the device, so that a
   * board whose sysfs attributes are missing fails here without having armed a watchdog nobody will
   * kick. With it, the open device is asked by ioctl.
   */
  open(): Promise<WatchdogInfo> {
    if (this.fd && this.info) return Promise.resolve(this.info);
    this.opening ??= (async () => {
      let info: WatchdogInfo | undefined;
      if (this.addon) {
        const fd = await this.openDevice();
        try {
          info = this.ioctlInfo(this.addon, fd.fd);
        } catch (err) {
          // The device did arm; a magic close disarms it again since nobody will kick it.
          await fd.write(magicByte).catch(() => undefined);
          await fd.close().catch(() => undefined);
          throw err;
        }
        this.fd = fd;
        this.ioctl = info && this.addon;
      }
      if (!info) {
        const [identity, timeoutS, bootStatus] = await Promise.all([
          this.readAttribute('identity', 'open'),
          this.readSeconds('timeout', 'open'),
          this.sysfsBootStatus(),
        ]);
        this.fd ??= await this.openDevice();
        info = { identity, timeoutS, ...(bootStatus === undefined ? {} : { bootStatus }) };
      }
      this.closed = false;
      this.info = info;
      return info;
    })().finally(() => (this.opening = undefined));
    return this.opening;
  }

  async kick(): Promise<void> {
    const fd = this.fd;
    if (!fd) throw this.closedError('kick');
    try {
      await fd.write(kickByte);
    } catch (err) {
      throw halErrorFromErrno(err, 'kick', this.target);
    }
  }

  /**
   * WDIOC_SETTIMEOUT. The watchdog core answers EINVAL outside the driver's [min_timeout,
   * max_timeout] (watchdog_timeout_invalid() in include/linux/watchdog.h), as bcm2835_wdt does above
   * 15 s; the timeout in force stays.
   */
  async setTimeout(seconds: number): Promise<number> {
    if (this.ioctl) {
      try {
        return this.call('set timeout', (addon, fd) => addon.wdtSetTimeout(fd, seconds));
      } catch (err) {
        if (!(err instanceof HalInvalidArgumentError)) throw err;
        const current = await this.getTimeout();
        throw new HalInvalidArgumentError(`${this.target} refused a timeout of ${seconds} s (EINVAL: outside the driver's range); the timeout in force is ${current} s`, {
          target: this.target,
          errno: 'EINVAL',
          cause: err,
        });
      }
    }
    const current = await this.getTimeout();
    if (seconds === current) return current;
    throw new HalUnsupportedError(
      `setting the timeout of ${this.target} to ${seconds} s needs the WDIOC_SETTIMEOUT ioctl of the native addon, which is not built ("npm run build:native"); the timeout in force is ${current} s`,
      { target: this.target },
    );
  }

  async getTimeout(): Promise<number> {
    if (this.ioctl) return this.call('get timeout', (addon, fd) => addon.wdtGetTimeout(fd));
    return this.readSeconds('timeout', 'get timeout');
  }

  /** WDIOC_GETTIMELEFT; drivers without get_timeleft (i6300esb, softdog) answer EOPNOTSUPP. */
  async timeLeft(): Promise<number> {
    if (this.ioctl) {
      try {
        return this.call('time left', (addon, fd) => addon.wdtGetTimeLeft(fd));
      } catch (err) {
        if (!(err instanceof HalUnsupportedError)) throw err;
        throw new HalUnsupportedError(`time left on ${this.target}: the driver does not report the time left (no WDIOC_GETTIMELEFT)`, {
          target: this.target,
          errno: 'EOPNOTSUPP',
          cause: err,
        });
      }
    }
    return this.readSeconds('timeleft', 'time left');
  }

  async close(options: { magic?: boolean } = {}): Promise<void> {
    await this.opening?.catch(() => undefined);
    const fd = this.fd;
    this.closed = true;
    if (!fd) return;
    this.fd = undefined;
    this.info = undefined;
    this.ioctl = undefined;
    try {
      if (options.magic) await fd.write(magicByte);
    } catch (err) {
      await fd.close().catch(() => undefined);
      throw halErrorFromErrno(err, 'magic close', this.target);
    }
    try {
      await fd.close();
    } catch (err) {
      throw halErrorFromErrno(err, 'close', this.target);
    }
  }
}
