/**
 * Simulated GPIO lines. Each named line of the board entry is a physical level; the firmware opens it
 * through the GpioController interface like a real line, the simulation drives inputs (`drive`, or a
 * `source` read from a chip model such as an SFP's LOS pin), and faults pin a line high or low the way
 * a short or a broken pull-up would.
 */
import type { Clock, Timer } from '../hal/clock.js';
import { HalClosedError, HalInvalidArgumentError, HalLineBusyError, HalNotFoundError } from '../hal/errors.js';
import {
  type GpioController,
  type GpioEdge,
  type GpioLine,
  type GpioLineSpec,
  type GpioValue,
  type GpioWatcher,
  gpioTarget,
} from '../hal/gpio.js';
import type { FaultRegistry } from './faults.js';

export const gpioFaultKinds = [
  { kind: 'stuck-high' as const, description: 'the line reads physically high whatever drives it' },
  { kind: 'stuck-low' as const, description: 'the line reads physically low whatever drives it' },
];

export interface PhysicalLine {
  name: string;
  key: string;
  /** Level driven by the simulation (inputs) or by the firmware (outputs). */
  driven: GpioValue;
  source: (() => GpioValue) | undefined;
  /** Last level watchers were told about, physical. */
  seen: GpioValue;
  handles: Set<SimGpioLine>;
  /** Another process or driver holds the line (its consumer name), so the firmware's request fails with EBUSY. */
  heldBy: string | undefined;
}

export class SimGpio implements GpioController {
  private readonly lines = new Map<string, PhysicalLine>();
  private readonly byName = new Map<string, PhysicalLine>();
  private readonly handles = new Set<SimGpioLine>();

  constructor(
    private readonly clock: Clock,
    private readonly faults: FaultRegistry,
  ) {}

  /**
   * Declares a physical line under its board-entry name, which is also its fault target. `level` is
   * the physical level it rests at; `source` makes it follow a chip model instead.
   */
  define(name: string, spec: Pick<GpioLineSpec, 'chip' | 'line'>, options: { level?: GpioValue; source?: () => GpioValue } = {}): void {
    const key = gpioTarget(spec);
    const line: PhysicalLine = { name, key, driven: options.level ?? 0, source: options.source, seen: 0, handles: new Set(), heldBy: undefined };
    line.seen = this.physical(line);
    this.lines.set(key, line);
    this.byName.set(name, line);
    this.faults.register(name, gpioFaultKinds);
  }

  private physical(line: PhysicalLine): GpioValue {
    if (this.faults.active(line.name, 'stuck-high')) return 1;
    if (this.faults.active(line.name, 'stuck-low')) return 0;
    return line.source ? line.source() : line.driven;
  }

  /** Physical level of a named line, as a probe on the pin would show it. */
  level(name: string): GpioValue {
    return this.physical(this.named(name));
  }

  /**
   * Another consumer requests the line (a `gpioset`, a kernel driver): until the returned release is
   * called the firmware's request of it fails as the character device's does, EBUSY
   * (gpiod_request_commit in drivers/gpio/gpiolib.c).
   */
  holdElsewhere(name: string, consumer: string): () => void {
    const line = this.named(name);
    line.heldBy = consumer;
    return () => {
      if (line.heldBy === consumer) line.heldBy = undefined;
    };
  }

  /** Drives an input line from outside the SoC (a sensor's alarm pin, a power-good signal). */
  drive(name: string, level: GpioValue): void {
    const line = this.named(name);
    line.driven = level;
    this.settle(line);
  }

  /** Re-evaluates every line after something changed (a fault, a chip model's state) and fires edges. */
  refresh(): void {
    for (const line of this.lines.values()) this.settle(line);
  }

  private named(name: string): PhysicalLine {
    const line = this.byName.get(name);
    if (!line) throw new HalNotFoundError(`no simulated GPIO line named "${name}"`, { target: name });
    return line;
  }

  /** @internal called by line handles when the firmware writes an output. */
  setDriven(line: PhysicalLine, level: GpioValue): void {
    line.driven = level;
    this.settle(line);
  }

  private settle(line: PhysicalLine): void {
    const level = this.physical(line);
    if (level === line.seen) return;
    line.seen = level;
    for (const handle of line.handles) handle.changed(level);
  }

  async open(spec: GpioLineSpec): Promise<GpioLine> {
    await Promise.resolve();
    const key = gpioTarget(spec);
    const line = this.lines.get(key);
    if (!line) {
      const chips = new Set([...this.lines.values()].map((l) => l.key.split('/')[0]));
      if (!chips.has(spec.chip)) {
        throw new HalNotFoundError(`no GPIO chip labelled "${spec.chip}"; chips: ${[...chips].join(', ')}`, { target: key });
      }
      throw new HalNotFoundError(`no line "${spec.line}" on GPIO chip "${spec.chip}"`, { target: key });
    }
    if (line.heldBy !== undefined) {
      throw new HalLineBusyError(`request on gpio:${key}: the line is already requested by consumer "${line.heldBy}" (EBUSY)`, { target: `gpio:${key}`, errno: 'EBUSY' });
    }
    const handle = new SimGpioLine(this, line, spec, this.clock);
    if (spec.direction === 'out') this.setDriven(line, (spec.initial ?? 0) ^ (spec.activeLow ? 1 : 0) ? 1 : 0);
    line.handles.add(handle);
    this.handles.add(handle);
    return handle;
  }

  /** @internal */
  forget(handle: SimGpioLine, line: PhysicalLine): void {
    line.handles.delete(handle);
    this.handles.delete(handle);
  }

  /** @internal */
  read(line: PhysicalLine): GpioValue {
    return this.physical(line);
  }

  async close(): Promise<void> {
    await Promise.all([...this.handles].map((handle) => handle.close()));
  }
}

function wants(edge: GpioEdge, value: GpioValue): boolean {
  return edge === 'both' || (edge === 'rising' && value === 1) || (edge === 'falling' && value === 0);
}

class SimGpioLine implements GpioLine {
  readonly target: string;
  private readonly watchers = new Set<GpioWatcher>();
  private closed = false;
  private debounce: Timer | undefined;
  /** Logical value last reported to watchers. */
  private reported: GpioValue;

  constructor(
    private readonly controller: SimGpio,
    private readonly line: PhysicalLine,
    readonly spec: Readonly<GpioLineSpec>,
    private readonly clock: Clock,
  ) {
    this.target = gpioTarget(spec);
    this.reported = this.logical(controller.read(line));
  }

  private logical(level: GpioValue): GpioValue {
    return (this.spec.activeLow ? level ^ 1 : level) as GpioValue;
  }

  private ensureOpen(): void {
    if (this.closed) throw new HalClosedError(`GPIO line ${this.target} is closed`, { target: this.target, canceled: true });
  }

  async read(): Promise<GpioValue> {
    await Promise.resolve();
    this.ensureOpen();
    return this.logical(this.controller.read(this.line));
  }

  async write(value: GpioValue): Promise<void> {
    await Promise.resolve();
    this.ensureOpen();
    if (this.spec.direction !== 'out') {
      throw new HalInvalidArgumentError(`GPIO line ${this.target} is an input and cannot be written`, { target: this.target });
    }
    if (value !== 0 && value !== 1) throw new HalInvalidArgumentError(`GPIO value must be 0 or 1, got ${String(value)}`, { target: this.target });
    this.controller.setDriven(this.line, this.logical(value));
  }

  watch(watcher: GpioWatcher): () => void {
    this.ensureOpen();
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  /** @internal the physical level changed. */
  changed(level: GpioValue): void {
    if (this.closed || this.spec.direction !== 'in') return;
    const debounceMs = this.spec.debounceMs ?? 0;
    if (debounceMs <= 0) {
      this.report(this.logical(level));
      return;
    }
    this.debounce?.cancel();
    this.debounce = this.clock.setTimeout(() => {
      this.debounce = undefined;
      this.report(this.logical(this.controller.read(this.line)));
    }, debounceMs);
  }

  private report(value: GpioValue): void {
    if (value === this.reported) return;
    this.reported = value;
    if (!wants(this.spec.edge ?? 'both', value)) return;
    const at = this.clock.now();
    for (const watcher of this.watchers) watcher(value, at);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.debounce?.cancel();
    this.watchers.clear();
    this.controller.forget(this, this.line);
  }
}
