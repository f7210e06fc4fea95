/**
 * The hardware watchdog through /dev/watchdog. Opening the device arms it, any write kicks it, and
 * writing 'V' before closing is the magic close that disarms drivers which honour it.
 *
 * Node has no ioctl, so WDIOC_GETSUPPORT / GETTIMEOUT / GETTIMELEFT are replaced by the watchdog
 * class in sysfs (/sys/class/watchdog/watchdogN/{identity,timeout,timeleft}, present with
 * CONFIG_WATCHDOG_SYSFS), and WDIOC_SETTIMEOUT has no replacement at all: `setTimeout` only accepts
 * the timeout already in force. The native addon (a later issue) adds WDIOC_SETTIMEOUT.
 */
import { constants } from 'node:fs';
import { type FileHandle, open, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { HalClosedError, type HalError, HalUnsupportedError, halErrorFromErrno } from '../errors.js';
import type { Watchdog, WatchdogInfo } from '../watchdog.js';

export const defaultWatchdogSysfsRoot = '/sys/class/watchdog';

export interface LinuxWatchdogOptions {
  /** The watchdog class directory. Default /sys/class/watchdog; tests lay out a fake tree. */
  sysfsRoot?: string;
}

/** The kick: the kernel only counts the write, and a byte other than 'V' cancels a pending magic close. */
const kickByte = Buffer.of(0);
const magicByte = Buffer.from('V');

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

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

  constructor(
    private readonly device: string,
    options: LinuxWatchdogOptions = {},
  ) {
    this.target = `watchdog:${device}`;
    this.sysfsDir = join(options.sysfsRoot ?? defaultWatchdogSysfsRoot, watchdogSysfsName(device));
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

  /**
   * Reads identity and timeout before opening the device, so that a board whose sysfs attributes
   * are missing fails here without having armed a watchdog nobody will kick.
   */
  open(): Promise<WatchdogInfo> {
    if (this.fd && this.info) return Promise.resolve(this.info);
    this.opening ??= (async () => {
      const [identity, timeoutS] = await Promise.all([this.readAttribute('identity', 'open'), this.readSeconds('timeout', 'open')]);
      try {
        // No O_CREAT: a missing device must fail, not become a regular file that nothing watches.
        this.fd = await open(this.device, constants.O_WRONLY);
      } catch (err) {
        throw halErrorFromErrno(err, 'open', this.target);
      }
      this.closed = false;
      this.info = { identity, timeoutS };
      return this.info;
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

  async setTimeout(seconds: number): Promise<number> {
    const current = await this.getTimeout();
    if (seconds === current) return current;
    throw new HalUnsupportedError(
      `setting the timeout of ${this.target} to ${seconds} s needs the WDIOC_SETTIMEOUT ioctl, which Node cannot issue; the timeout in force is ${current} s`,
      { target: this.target },
    );
  }

  getTimeout(): Promise<number> {
    return this.readSeconds('timeout', 'get timeout');
  }

  timeLeft(): Promise<number> {
    return this.readSeconds('timeleft', 'time left');
  }

  async close(options: { magic?: boolean } = {}): Promise<void> {
    await this.opening?.catch(() => undefined);
    const fd = this.fd;
    this.closed = true;
    if (!fd) return;
    this.fd = undefined;
    this.info = undefined;
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
