/**
 * A real board: the HAL of a `backend: 'linux'` entry of boards.json over the Linux backends in this
 * folder. Nothing is opened up front: buses, lines, ports and the watchdog are opened on first use,
 * and the optional native packages are imported then, so constructing a LinuxBoard on a laptop
 * costs nothing and fails nothing.
 */
import { existsSync, readdirSync } from 'node:fs';
import type { BoardConfig } from '../../config/board-config.js';
import type { BoardHal } from '../board.js';
import type { BootIdentity } from '../boot.js';
import { readBootIdentity } from './boot.js';
import { type Clock, systemClock } from '../clock.js';
import { HalClosedError, HalInvalidArgumentError, HalNotFoundError } from '../errors.js';
import type { GpioController } from '../gpio.js';
import type { I2cBus } from '../i2c.js';
import type { Watchdog } from '../watchdog.js';
import { CdevGpioController, defaultGpioDevDir } from './gpio-cdev.js';
import { LinuxGpioController } from './gpio.js';
import { ioctlAddon } from './ioctl.js';
import { openLinuxI2cBus } from './i2c.js';
import { LinuxHealth } from './health.js';
import { LinuxNetController } from './net.js';
import type { ModuleLoader } from './optional.js';
import { LinuxSerialController } from './serial.js';
import { LinuxWatchdog } from './watchdog.js';

export interface LinuxBoardOptions {
  /** Default the system clock. */
  clock?: Clock;
  /** Default /sys/class/gpio. */
  gpioRoot?: string;
  /** Where the gpiochipN character devices are; default /dev. */
  gpioDevDir?: string;
  /** Default /sys/class/net. */
  netRoot?: string;
  /** Default /sys/class/watchdog. */
  watchdogSysfsRoot?: string;
  /** Directory standing for `/` for the health readings (sysfs, procfs, /run); default `/`. */
  healthRoot?: string;
  /** Where procfs is, for the boot identity; default /proc. */
  procRoot?: string;
  /** Replacements for `import()` of the optional packages, for tests. */
  loaders?: { onoff?: ModuleLoader; i2cBus?: ModuleLoader; serialBindings?: ModuleLoader };
}

/**
 * The board entry's `gpioBackend`, or where it says nothing the character device when the kernel
 * offers one (/dev/gpiochipN) and the addon is built, since upstream is retiring sysfs GPIO.
 */
export function gpioBackend(config: Pick<BoardConfig, 'gpioBackend'>, devDir: string = defaultGpioDevDir): 'cdev' | 'sysfs' {
  if (config.gpioBackend) return config.gpioBackend;
  const hasChip = existsSync(devDir) && readdirSync(devDir).some((name) => /^gpiochip\d+$/.test(name));
  return hasChip && ioctlAddon() !== undefined ? 'cdev' : 'sysfs';
}

export class LinuxBoard implements BoardHal {
  readonly config: Readonly<BoardConfig>;
  readonly clock: Clock;
  readonly gpio: GpioController;
  readonly serial: LinuxSerialController;
  readonly net: LinuxNetController;
  readonly health: LinuxHealth;
  private readonly options: LinuxBoardOptions;
  private readonly buses = new Map<string, Promise<I2cBus>>();
  private watchdogHandle: LinuxWatchdog | undefined;
  /** Closes of everything opened, in opening order. */
  private readonly opened: Array<() => Promise<void>> = [];
  private closing: Promise<void> | undefined;

  constructor(config: BoardConfig, options: LinuxBoardOptions = {}) {
    if (config.backend !== 'linux') {
      throw new HalInvalidArgumentError(`board ${config.id} has backend '${config.backend}'; LinuxBoard serves only 'linux' entries`, {
        target: config.id,
      });
    }
    this.config = config;
    this.options = options;
    this.clock = options.clock ?? systemClock;
    const track = (close: () => Promise<void>): void => {
      this.opened.push(close);
    };
    const gpioDevDir = options.gpioDevDir ?? defaultGpioDevDir;
    this.gpio =
      gpioBackend(config, gpioDevDir) === 'cdev'
        ? new CdevGpioController({ clock: this.clock, track, devDir: gpioDevDir })
        : new LinuxGpioController({
            clock: this.clock,
            track,
            ...(options.gpioRoot !== undefined && { root: options.gpioRoot }),
            ...(options.loaders?.onoff && { load: options.loaders.onoff }),
          });
    this.serial = new LinuxSerialController({
      clock: this.clock,
      track,
      gpio: this.gpio,
      ...(options.loaders?.serialBindings && { load: options.loaders.serialBindings }),
    });
    this.net = new LinuxNetController(options.netRoot !== undefined ? { root: options.netRoot } : {});
    this.health = new LinuxHealth(options.healthRoot !== undefined ? { root: options.healthRoot } : {});
  }

  private ensureOpen(what: string): void {
    if (this.closing) throw new HalClosedError(`${what} on closed board ${this.config.id}`, { target: this.config.id, canceled: true });
  }

  i2c(busId: string): Promise<I2cBus> {
    try {
      this.ensureOpen(`open I2C bus ${busId}`);
    } catch (err) {
      return Promise.reject(err);
    }
    const existing = this.buses.get(busId);
    if (existing) return existing;
    const config = this.config.i2c?.find((bus) => bus.id === busId);
    if (!config) {
      const known = this.config.i2c?.map((bus) => bus.id).join(', ') || 'none';
      return Promise.reject(new HalNotFoundError(`board ${this.config.id} has no I2C bus ${busId} (buses: ${known})`, { target: busId }));
    }
    const opening = openLinuxI2cBus(config, {
      clock: this.clock,
      ...(this.options.loaders?.i2cBus && { load: this.options.loaders.i2cBus }),
    }).then((bus) => {
      this.opened.push(() => bus.close());
      return bus;
    });
    this.buses.set(busId, opening);
    // A failed open is retried on the next call: the adapter may be enabled or the package installed meanwhile.
    opening.catch(() => {
      if (this.buses.get(busId) === opening) this.buses.delete(busId);
    });
    return opening;
  }

  async watchdog(): Promise<Watchdog> {
    this.ensureOpen('open the watchdog');
    const config = this.config.watchdog;
    if (!config) throw new HalNotFoundError(`board ${this.config.id} has no watchdog`, { target: this.config.id });
    if (!this.watchdogHandle) {
      const handle = new LinuxWatchdog(config.device, this.options.watchdogSysfsRoot !== undefined ? { sysfsRoot: this.options.watchdogSysfsRoot } : {});
      this.watchdogHandle = handle;
      // Closing without the magic character leaves the watchdog armed: disarming on the way out
      // is the watchdog keeper's decision, made before it closes the board.
      this.opened.push(() => handle.close());
    }
    return this.watchdogHandle;
  }

  boot(): Promise<BootIdentity> {
    return readBootIdentity(this.options.procRoot);
  }

  /** Closes everything opened, newest first; keeps going past a failure and rethrows the first. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled(this.buses.values());
      let first: unknown;
      for (const close of this.opened.splice(0).reverse()) await close().catch((err: unknown) => (first ??= err));
      await this.gpio.close().catch((err: unknown) => (first ??= err));
      await this.serial.close().catch((err: unknown) => (first ??= err));
      if (first !== undefined) throw first;
    })();
    return this.closing;
  }
}
