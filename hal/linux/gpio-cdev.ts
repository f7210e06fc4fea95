/**
 * GPIO lines through the GPIO character device (/dev/gpiochipN, v2 uAPI in linux/gpio.h), with the
 * ioctls of the native addon (hal/linux/ioctl.ts). Chips are found by label (GPIO_GET_CHIPINFO_IOCTL),
 * lines by the names the kernel gives them (GPIO_V2_GET_LINEINFO_IOCTL), or on a Raspberry Pi pin
 * controller `GPIO<n>` as offset n; each line is one request (GPIO_V2_GET_LINE_IOCTL) whose fd carries
 * the values (GPIO_V2_LINE_GET/SET_VALUES_IOCTL) and the edge events, read on the main loop.
 *
 * Unlike sysfs, the character device has no global numbers and needs no export, and a line is
 * released, not reset, when its fd closes: opening an output that already is one keeps its level
 * (GPIO_V2_LINE_FLAG_OUTPUT in the line info), so a restarted firmware does not drop a relay. Whether
 * the pin holds the level while no process has the line is up to the chip's driver (gpio-sim returns
 * it to its pull; see docs/raspberry-pi.md for the Pi's).
 */
import { close as closeFd } from 'node:fs';
import { type FileHandle, open as openFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Clock } from '../clock.js';
import { HalClosedError, HalInvalidArgumentError, HalNotFoundError } from '../errors.js';
import { type GpioController, type GpioLine, type GpioLineSpec, type GpioValue, type GpioWatcher, gpioTarget } from '../gpio.js';
import { raspberryPiGpioChips } from './gpio-chips.js';
import { gpioError } from './gpio.js';
import {
  GPIO_V2_LINE_FLAG_ACTIVE_LOW,
  GPIO_V2_LINE_FLAG_EDGE_FALLING,
  GPIO_V2_LINE_FLAG_EDGE_RISING,
  GPIO_V2_LINE_FLAG_INPUT,
  GPIO_V2_LINE_FLAG_OUTPUT,
  type GpioEdgeEvent,
  type IoctlBinding,
  requireIoctlAddon,
} from './ioctl.js';
import { Opened } from './opened.js';

const closeAsync = promisify(closeFd);

export const defaultGpioDevDir = '/dev';
/** The consumer name `gpioinfo` shows for lines this firmware holds. */
export const gpioConsumer = 'handcheck';

export interface CdevGpioOptions {
  clock: Clock;
  /** Where the gpiochipN devices are. Default /dev. */
  devDir?: string;
  /** The ioctl addon; default the built one. */
  ioctl?: IoctlBinding;
  /** Called with each opened line's close, so a board can close everything in reverse order. */
  track?: (close: () => Promise<void>) => void;
}

interface Chip {
  path: string;
  handle: FileHandle;
  label: string;
  lines: number;
}

class CdevGpioLine implements GpioLine {
  readonly spec: Readonly<GpioLineSpec>;
  readonly target: string;
  private readonly watchers = new Set<GpioWatcher>();
  private edges: { close(): void } | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    spec: GpioLineSpec,
    private readonly fd: number,
    private readonly addon: IoctlBinding,
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
      return this.addon.gpioGetValue(this.fd) === 1 ? 1 : 0;
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
      this.addon.gpioSetValue(this.fd, value === 1);
    } catch (err) {
      throw gpioError(err, 'write', this.target);
    }
  }

  /**
   * The kernel queues edges from the request on; those older than the first watcher are dropped by
   * their timestamp (CLOCK_MONOTONIC, the clock of process.hrtime) so a watcher never hears the past.
   */
  watch(watcher: GpioWatcher): () => void {
    if (this.closing || this.spec.direction !== 'in' || (this.spec.edge ?? 'both') === 'none') return () => undefined;
    if (!this.edges) {
      const since = process.hrtime.bigint();
      this.edges = new this.addon.EdgeWatch(this.fd, (events: GpioEdgeEvent[]) => {
        for (const event of events) {
          if (event.timestampNs < since || this.closing) continue;
          const atMs = this.clock.now();
          for (const w of [...this.watchers]) w(event.rising ? 1 : 0, atMs);
        }
      });
    }
    this.watchers.add(watcher);
    return () => {
      this.watchers.delete(watcher);
      if (this.watchers.size === 0) this.stopEdges();
    };
  }

  private stopEdges(): void {
    this.edges?.close();
    this.edges = undefined;
  }

  /** Releases the line (closing its fd); an output is not driven to any level on the way out. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.watchers.clear();
      this.stopEdges();
      try {
        await closeAsync(this.fd);
      } catch (err) {
        throw gpioError(err, 'close', this.target);
      }
    })();
    return this.closing;
  }
}

export class CdevGpioController implements GpioController {
  private readonly devDir: string;
  private chips: Promise<Chip[]> | undefined;
  private readonly lines: Opened<CdevGpioLine>;

  constructor(private readonly options: CdevGpioOptions) {
    this.lines = new Opened('GPIO controller', options.track);
    this.devDir = options.devDir ?? defaultGpioDevDir;
  }

  private addon(): IoctlBinding {
    return this.options.ioctl ?? requireIoctlAddon('the GPIO character device backend');
  }

  private listChips(addon: IoctlBinding): Promise<Chip[]> {
    this.chips ??= (async () => {
      const names = (await readdir(this.devDir)).filter((name) => /^gpiochip\d+$/.test(name)).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
      const chips: Chip[] = [];
      for (const name of names) {
        const path = join(this.devDir, name);
        let handle: FileHandle;
        try {
          handle = await openFile(path, 'r+');
        } catch (err) {
          throw gpioError(err, 'open', path);
        }
        try {
          const { label, lines } = addon.gpioChipInfo(handle.fd);
          chips.push({ path, handle, label, lines });
        } catch (err) {
          await handle.close();
          throw gpioError(err, 'chip info', path);
        }
      }
      return chips;
    })();
    this.chips.catch(() => (this.chips = undefined));
    return this.chips;
  }

  private async findLine(addon: IoctlBinding, spec: GpioLineSpec, target: string): Promise<{ chip: Chip; offset: number; flags: number }> {
    const chips = await this.listChips(addon);
    const matching = chips.filter((c) => c.label === spec.chip);
    const chip = matching[0];
    if (chip === undefined) {
      const seen = chips.map((c) => `${c.label} (${c.path})`).join(', ') || 'none';
      throw new HalNotFoundError(`no GPIO chip labelled ${spec.chip} in ${this.devDir}; chips seen: ${seen}`, { target });
    }
    if (matching.length > 1) {
      throw new HalInvalidArgumentError(`GPIO chip label ${spec.chip} is ambiguous: ${matching.map((c) => c.path).join(', ')}`, { target });
    }
    const info = (offset: number) => {
      try {
        return addon.gpioLineInfo(chip.handle.fd, offset);
      } catch (err) {
        throw gpioError(err, 'line info', target);
      }
    };
    if (typeof spec.line === 'number') {
      if (!Number.isInteger(spec.line) || spec.line < 0 || spec.line >= chip.lines) {
        throw new HalNotFoundError(`GPIO line offset ${spec.line} is out of range for chip ${spec.chip} (${chip.path}: offsets 0-${chip.lines - 1})`, { target });
      }
      return { chip, offset: spec.line, flags: info(spec.line).flags };
    }
    const names: string[] = [];
    for (let offset = 0; offset < chip.lines; offset++) {
      const line = info(offset);
      if (line.name === spec.line) return { chip, offset, flags: line.flags };
      names.push(line.name);
    }
    const bcm = /^GPIO(\d+)$/.exec(spec.line);
    if (bcm?.[1] !== undefined && raspberryPiGpioChips.includes(chip.label) && Number(bcm[1]) < chip.lines) {
      const offset = Number(bcm[1]);
      return { chip, offset, flags: info(offset).flags };
    }
    const known = names.some((n) => n !== '') ? `line names: ${names.filter((n) => n !== '').join(', ')}` : 'the kernel gives its lines no names';
    throw new HalNotFoundError(`GPIO chip ${spec.chip} (${chip.path}) has no line named ${spec.line}; ${known}`, { target });
  }

  private request(addon: IoctlBinding, spec: GpioLineSpec, chip: Chip, offset: number, currentFlags: number, target: string): number {
    const activeLow = spec.activeLow ? GPIO_V2_LINE_FLAG_ACTIVE_LOW : 0;
    try {
      if (spec.direction === 'in') {
        const edge = spec.edge ?? 'both';
        const edges =
          (edge === 'rising' || edge === 'both' ? GPIO_V2_LINE_FLAG_EDGE_RISING : 0) | (edge === 'falling' || edge === 'both' ? GPIO_V2_LINE_FLAG_EDGE_FALLING : 0);
        return addon.gpioRequestLine(chip.handle.fd, offset, gpioConsumer, GPIO_V2_LINE_FLAG_INPUT | activeLow | edges, null, Math.round((spec.debounceMs ?? 0) * 1000));
      }
      if ((currentFlags & GPIO_V2_LINE_FLAG_OUTPUT) === 0) {
        return addon.gpioRequestLine(chip.handle.fd, offset, gpioConsumer, GPIO_V2_LINE_FLAG_OUTPUT | activeLow, (spec.initial ?? 0) === 1, 0);
      }
      // Already an output: take it as it is, read its level, and keep driving that level.
      const fd = addon.gpioRequestLine(chip.handle.fd, offset, gpioConsumer, activeLow, null, 0);
      try {
        addon.gpioSetConfig(fd, GPIO_V2_LINE_FLAG_OUTPUT | activeLow, addon.gpioGetValue(fd) === 1);
      } catch (err) {
        closeFd(fd, () => undefined);
        throw err;
      }
      return fd;
    } catch (err) {
      throw gpioError(err, 'request', target, () => addon.gpioLineInfo(chip.handle.fd, offset).consumer);
    }
  }

  async open(spec: GpioLineSpec): Promise<GpioLine> {
    const target = `gpio:${gpioTarget(spec)}`;
    this.lines.refuseIfClosed(target);
    const addon = this.addon();
    const { chip, offset, flags } = await this.findLine(addon, spec, target);
    return this.lines.adopt(new CdevGpioLine(spec, this.request(addon, spec, chip, offset, flags, target), addon, this.options.clock), target);
  }

  async close(): Promise<void> {
    const first = await this.lines.closeAll();
    const chips = await this.chips?.catch(() => []);
    this.chips = undefined;
    for (const chip of chips ?? []) await chip.handle.close().catch(() => undefined);
    if (first !== undefined) throw first;
  }
}
