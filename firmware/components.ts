/**
 * One diagnosable part of the board per entry of `components`: it opens the HAL handles it needs on
 * first use, proves the part's identity, reads it, and judges the reading. The device-state manager
 * runs these; they know nothing of connections or services. These are the shapes of check; which
 * kind uses which is firmware/component-kinds.ts.
 */
import type { BoardHal } from '../hal/board.js';
import type { ComponentConfig, ComponentKind, GpioLineConfig } from '../config/board-config.js';
import type { Driver, DriverCallOptions, Identity, Reading } from '../hal/drivers/driver.js';
import { HalNotFoundError } from '../hal/errors.js';
import type { GpioLine, GpioValue } from '../hal/gpio.js';
import { type Health, type Judgement, judge, worse } from './thresholds.js';

export interface CheckResult extends Judgement {
  reading: Reading;
  identity?: Identity;
}

export interface ComponentCheck {
  readonly id: string;
  readonly kind: ComponentKind;
  readonly config: Readonly<ComponentConfig>;
  run(options: DriverCallOptions): Promise<CheckResult>;
  /**
   * Event-capable components: `onEvent` is called when the part itself signals a change between
   * diagnoses (an edge on a status line, a carrier change), from the first run that opened the
   * handles on. Returns a function that stops the calls.
   */
  watch?(onEvent: PartEventListener): () => void;
  close(): Promise<void>;
}

/**
 * A part signalled a change (`event`, for logs). `fault` is what the signal itself asserts - a status
 * line at its fault level, the carrier lost - so the part is known failed without a bus transfer;
 * undefined when it asserts none, which proves nothing healthy: only a diagnosis passes a part.
 */
export type PartEventListener = (event: string, fault: string | undefined) => void;

/** What the watchdog keeper reports, so the watchdog can be a component like any other. */
export interface WatchdogHealth {
  health: Health;
  reason: string;
  reading: Reading;
}

export interface CheckContext {
  board: BoardHal;
  watchdogHealth: () => WatchdogHealth;
}

function gpioSpec(board: BoardHal, name: string): GpioLineConfig {
  const spec = board.config.gpio?.[name];
  if (!spec) throw new HalNotFoundError(`board ${board.config.id} has no GPIO line "${name}"`, { target: name });
  return spec;
}

/**
 * The common shape of driver-backed checks: open once, then on every run prove the part's identity
 * (a swapped or failing chip answers differently long before its readings look wrong), read, judge.
 * A driver with `diagnose` re-proves the identity with the fewest bus bytes that still catch a
 * swapped or reset part.
 */
interface Closable {
  close(): Promise<void>;
}

/** Handed to a check's `open`: opens GPIO lines by board name and keeps handles to close later. */
export interface Handles {
  /**
   * Opens a line; an input line's edges are events of the component, and `fault` says which value,
   * if any, asserts a fault of the part by itself.
   */
  line(name: string, fault?: (value: GpioValue) => string | undefined): Promise<GpioLine>;
  hold<T extends Closable>(handle: T): T;
  /** Subscribes to a part's own announcements of change until the handles close. */
  events(subscribe: (onEvent: PartEventListener) => () => void): void;
}

/** Errors after which the handles are reopened on the next run: the device went away and may come back. */
const reopenAfter = new Set(['ERR_HAL_CLOSED', 'ERR_HAL_NOT_FOUND']);

export interface DriverCheckOptions<D extends Driver> {
  /** Judgement beyond the board's ranges: flags, the part's own limits. */
  assess?: (reading: Reading, driver: D, options: DriverCallOptions, identity: Identity) => Promise<Judgement> | Judgement;
  /** Throws when the identity found is not the one the board entry expects. */
  verify?: (identity: Identity) => void;
}

/**
 * Subscribes to a part's events. A line whose value file cannot be polled for edges (ERR_HAL_UNSUPPORTED)
 * makes no events; the background refresh still sees the part, as for parts that announce nothing.
 */
function subscribeOrPoll(subscribe: (onEvent: PartEventListener) => () => void, onEvent: PartEventListener): () => void {
  try {
    return subscribe(onEvent);
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_HAL_UNSUPPORTED') return () => undefined;
    throw err;
  }
}

export class DriverCheck<D extends Driver> implements ComponentCheck {
  private driver: D | undefined;
  private readonly held: Closable[] = [];
  private notify: PartEventListener | undefined;

  private readonly assess: NonNullable<DriverCheckOptions<D>['assess']>;
  private readonly verify: NonNullable<DriverCheckOptions<D>['verify']>;

  constructor(
    readonly config: Readonly<ComponentConfig>,
    private readonly board: BoardHal,
    private readonly open: (handles: Handles) => Promise<D>,
    options: DriverCheckOptions<D> = {},
  ) {
    this.assess = options.assess ?? (() => ({ health: 'ok', reasons: [] }));
    this.verify = options.verify ?? (() => undefined);
  }

  get id(): string {
    return this.config.id;
  }

  get kind(): ComponentKind {
    return this.config.kind;
  }

  private readonly handles: Handles = {
    line: async (name, fault) => {
      const spec = gpioSpec(this.board, name);
      const line = this.handles.hold(await this.board.gpio.open(spec));
      if (spec.direction === 'in') this.handles.events((onEvent) => line.watch((value) => onEvent(`line ${name} changed to ${value}`, fault?.(value))));
      return line;
    },
    hold: (handle) => {
      this.held.push(handle);
      return handle;
    },
    events: (subscribe) => {
      const stop = subscribeOrPoll(subscribe, (event, fault) => this.notify?.(event, fault));
      this.held.push({ close: async () => stop() });
    },
  };

  watch(onEvent: PartEventListener): () => void {
    this.notify = onEvent;
    return () => (this.notify = undefined);
  }

  async run(options: DriverCallOptions): Promise<CheckResult> {
    try {
      const driver = (this.driver ??= await this.open(this.handles));
      const { identity, reading } = driver.diagnose
        ? await driver.diagnose(options)
        : { identity: await driver.identify(options), reading: await driver.read(options) };
      this.verify(identity);
      const own = judge(reading, this.config.thresholds);
      const extra = await this.assess(reading, driver, options, identity);
      // What the part gets wrong without disproving its identity degrades it: the kernel would warn and carry on.
      const warnings = identity.warnings ?? [];
      return {
        health: worse(worse(own.health, extra.health), warnings.length > 0 ? 'degraded' : 'ok'),
        reasons: [...own.reasons, ...extra.reasons, ...warnings],
        reading,
        identity,
      };
    } catch (err) {
      if (reopenAfter.has((err as { code?: string }).code ?? '')) await this.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    this.driver = undefined;
    for (const handle of this.held.splice(0).reverse()) await handle.close().catch(() => undefined);
  }
}

export function flag(reading: Reading, key: string, health: Health, reason: string): Judgement | undefined {
  return reading[key] === true ? { health, reasons: [reason] } : undefined;
}

export function combine(...judgements: Array<Judgement | undefined>): Judgement {
  let health: Health = 'ok';
  const reasons: string[] = [];
  for (const j of judgements) {
    if (!j) continue;
    health = worse(health, j.health);
    reasons.push(...j.reasons);
  }
  return { health, reasons };
}

export class GpioStatusCheck implements ComponentCheck {
  private line: GpioLine | undefined;
  private notify: PartEventListener | undefined;

  constructor(
    readonly config: Readonly<Extract<ComponentConfig, { kind: 'gpio-status' }>>,
    private readonly board: BoardHal,
  ) {}

  get id(): string {
    return this.config.id;
  }

  get kind(): ComponentKind {
    return this.config.kind;
  }

  async run(): Promise<CheckResult> {
    if (!this.line) {
      const line = await this.board.gpio.open(gpioSpec(this.board, this.config.line));
      this.line = line;
      subscribeOrPoll(
        (onEvent) => line.watch((value) => onEvent(`line ${this.config.line} changed to ${value}`, this.fault(value))),
        (event, fault) => this.notify?.(event, fault),
      );
    }
    const value = await this.line.read();
    const fault = this.fault(value);
    return { health: fault === undefined ? 'ok' : 'failed', reasons: fault === undefined ? [] : [fault], reading: { value } };
  }

  private fault(value: GpioValue): string | undefined {
    return value === this.config.expect ? undefined : `line ${this.config.line} reads ${value}, expected ${this.config.expect}`;
  }

  watch(onEvent: PartEventListener): () => void {
    this.notify = onEvent;
    return () => (this.notify = undefined);
  }

  async close(): Promise<void> {
    await this.line?.close();
  }
}

export class WatchdogCheck implements ComponentCheck {
  constructor(
    readonly config: Readonly<ComponentConfig>,
    private readonly health: () => WatchdogHealth,
  ) {}

  get id(): string {
    return this.config.id;
  }

  get kind(): ComponentKind {
    return this.config.kind;
  }

  async run(): Promise<CheckResult> {
    const { health, reason, reading } = this.health();
    return { health, reasons: reason ? [reason] : [], reading };
  }

  async close(): Promise<void> {}
}
