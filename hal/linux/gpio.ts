/**
 * GPIO lines on Linux through onoff (sysfs GPIO). Lines are found by chip label and line name or
 * offset (see gpio-chips.ts); onoff is imported on the first `open`, so a laptop without it only fails
 * when a Linux board actually asks for a line. Where the kernel has the GPIO character device the
 * board uses gpio-cdev.ts instead, unless its entry says `gpioBackend: "sysfs"`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import { HalClosedError, type HalError, HalInvalidArgumentError, HalLineBusyError, HalPermissionError, HalUnsupportedError, errnoOf, halErrorFromErrno } from '../errors.js';
import {
  type GpioController,
  type GpioDirection,
  type GpioEdge,
  type GpioLine,
  type GpioLineSpec,
  type GpioValue,
  type GpioWatcher,
  gpioTarget,
} from '../gpio.js';
import { defaultGpioRoot, resolveGpioLine } from './gpio-chips.js';
import { type ModuleLoader, importPackage, loadOptional, moduleMember } from './optional.js';
import { Opened } from './opened.js';

/** The part of onoff's `Gpio` this backend uses. */
export interface OnoffGpio {
  read(): Promise<GpioValue>;
  readSync(): GpioValue;
  write(value: GpioValue): Promise<void>;
  watch(callback: (err: Error | null | undefined, value: GpioValue) => void): void;
  unwatchAll(): void;
  unexport(): void;
}

export type OnoffGpioConstructor = new (
  gpio: number,
  direction: GpioDirection | 'high' | 'low',
  edge?: GpioEdge,
  options?: { activeLow?: boolean; debounceTimeout?: number },
) => OnoffGpio;

export interface LinuxGpioOptions {
  clock: Clock;
  /** The sysfs GPIO class directory. Default /sys/class/gpio; tests lay out a fake tree. */
  root?: string;
  /** How to import onoff. Default `import('onoff')`. */
  load?: ModuleLoader;
  /** Called with each opened line's close, so a board can close everything in reverse order. */
  track?: (close: () => Promise<void>) => void;
}

export function gpioError(err: unknown, operation: string, target: string, consumer?: () => string): HalError {
  const errno = errnoOf(err);
  if (errno === 'EACCES' || errno === 'EPERM') {
    return new HalPermissionError(
      `${operation} on ${target}: permission denied; run as a member of the \`gpio\` group (sudo usermod -aG gpio $USER, then log in again)`,
      { target, errno, cause: err },
    );
  }
  if (errno === 'EBUSY') {
    let holder = '';
    try {
      const name = consumer?.();
      holder = name ? ` "${name}"` : '';
    } catch {
      // The line's info is only a better message; the EBUSY stands without it.
    }
    return new HalLineBusyError(
      `${operation} on ${target}: the line is already requested by${holder ? ` consumer${holder}` : ' a kernel driver or another process'} (EBUSY; \`gpioinfo\` shows who); stop that process, remove the overlay or driver that claims the pin, or choose another line in the board entry`,
      { target, errno, cause: err },
    );
  }
  return halErrorFromErrno(err, operation, target);
}

/** The raw level of a line exported as an output, or undefined when it is not one. */
async function exportedOutputLevel(root: string, number: number): Promise<GpioValue | undefined> {
  const dir = join(root, `gpio${number}`);
  const read = (name: string): Promise<string | undefined> => readFile(join(dir, name), 'utf8').then((text) => text.trim(), () => undefined);
  if ((await read('direction')) !== 'out') return undefined;
  const [value, activeLow] = await Promise.all([read('value'), read('active_low')]);
  if (value === undefined) return undefined;
  return (value === '1') !== (activeLow === '1') ? 1 : 0;
}

class LinuxGpioLine implements GpioLine {
  readonly spec: Readonly<GpioLineSpec>;
  readonly target: string;
  private readonly watchers = new Set<GpioWatcher>();
  private last: GpioValue | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    spec: GpioLineSpec,
    private readonly gpio: OnoffGpio,
    private readonly clock: Clock,
  ) {
    this.spec = Object.freeze({ ...spec });
    this.target = `gpio:${gpioTarget(spec)}`;
  }

  private closedError(operation: string): HalClosedError {
    return new HalClosedError(`${operation} on closed line ${this.target}`, { target: this.target, canceled: true });
  }

  async read(): Promise<GpioValue> {
    if (this.closing) throw this.closedError('read');
    try {
      return await this.gpio.read();
    } catch (err) {
      throw gpioError(err, 'read', this.target);
    }
  }

  async write(value: GpioValue): Promise<void> {
    if (this.closing) throw this.closedError('write');
    if (this.spec.direction === 'in') {
      throw new HalInvalidArgumentError(`cannot write ${value} to input line ${this.target}`, { target: this.target });
    }
    try {
      await this.gpio.write(value);
    } catch (err) {
      throw gpioError(err, 'write', this.target);
    }
  }

  watch(watcher: GpioWatcher): () => void {
    if (this.closing || (this.spec.direction === 'in' && (this.spec.edge ?? 'both') === 'none')) return () => undefined;
    if (this.watchers.size === 0) {
      // onoff's debounce reports the value that stayed, even when it equals the one before the
      // bounce; comparing with the last reported value turns that back into "no change".
      try {
        this.last = this.gpio.readSync();
        this.gpio.watch(this.onInterrupt);
      } catch (err) {
        // onoff's epoll throws a bare Error without an errno when the value file cannot be polled.
        if (errnoOf(err) === undefined) {
          throw new HalUnsupportedError(`watch on ${this.target}: the line's value file cannot be polled for edges`, { target: this.target, cause: err });
        }
        throw gpioError(err, 'watch', this.target);
      }
    }
    this.watchers.add(watcher);
    return () => {
      this.watchers.delete(watcher);
      if (this.watchers.size === 0 && !this.closing) this.gpio.unwatchAll();
    };
  }

  private readonly onInterrupt = (err: Error | null | undefined, value: GpioValue): void => {
    if (err || this.closing || value === this.last) return;
    this.last = value;
    const edge = this.spec.edge ?? 'both';
    if (edge === 'rising' && value !== 1) return;
    if (edge === 'falling' && value !== 0) return;
    const atMs = this.clock.now();
    for (const watcher of [...this.watchers]) watcher(value, atMs);
  };

  /**
   * An input is unexported, returning it to the kernel. An output stays exported at its level:
   * unexporting would let the pin controller fall back to an input and drop whatever the output
   * drives (a relay) at every firmware restart; the next open takes the level over (see `open`).
   * onoff's value file then stays open until the process exits.
   */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.watchers.clear();
        try {
          if (this.spec.direction === 'out') this.gpio.unwatchAll();
          else this.gpio.unexport();
          resolve();
        } catch (err) {
          reject(gpioError(err, 'close', this.target));
        }
      });
    });
    return this.closing;
  }
}

export class LinuxGpioController implements GpioController {
  private readonly root: string;
  private readonly load: ModuleLoader;
  private readonly lines: Opened<LinuxGpioLine>;
  private Gpio: Promise<OnoffGpioConstructor> | undefined;

  constructor(private readonly options: LinuxGpioOptions) {
    this.lines = new Opened('GPIO controller', options.track);
    this.root = options.root ?? defaultGpioRoot;
    this.load = options.load ?? importPackage('onoff');
  }

  private gpioClass(): Promise<OnoffGpioConstructor> {
    this.Gpio ??= loadOptional('onoff', 'the Linux GPIO backend', this.load, (mod) => {
      const Gpio = moduleMember(mod, 'Gpio');
      return typeof Gpio === 'function' ? (Gpio as OnoffGpioConstructor) : undefined;
    });
    // A failed load is not cached, so installing the package fixes a running firmware's next open.
    this.Gpio.catch(() => (this.Gpio = undefined));
    return this.Gpio;
  }

  async open(spec: GpioLineSpec): Promise<GpioLine> {
    const target = `gpio:${gpioTarget(spec)}`;
    this.lines.refuseIfClosed(target);
    const resolved = await resolveGpioLine(spec, this.root);
    const Gpio = await this.gpioClass();
    const activeLow = spec.activeLow ?? false;
    let direction: GpioDirection | 'high' | 'low' = spec.direction;
    if (spec.direction === 'out') {
      // sysfs 'high'/'low' set the direction and the raw level in one write, so the pin never
      // glitches to the wrong level; the raw level is the logical one inverted for active-low lines.
      // A line still exported as an output (by the firmware before a restart) keeps the level it has.
      const held = await exportedOutputLevel(this.root, resolved.number);
      direction = (held ?? (((spec.initial ?? 0) === 1) !== activeLow ? 1 : 0)) === 1 ? 'high' : 'low';
    }
    const edge = spec.direction === 'in' ? (spec.edge === 'none' ? 'none' : 'both') : undefined;
    let gpio: OnoffGpio;
    try {
      gpio = new Gpio(resolved.number, direction, edge, { activeLow, debounceTimeout: spec.debounceMs ?? 0 });
    } catch (err) {
      throw gpioError(err, `open (sysfs GPIO ${resolved.number})`, target);
    }
    return this.lines.adopt(new LinuxGpioLine(spec, gpio, this.options.clock), target);
  }

  async close(): Promise<void> {
    const first = await this.lines.closeAll();
    if (first !== undefined) throw first;
  }
}
