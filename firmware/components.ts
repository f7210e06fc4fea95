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
import type { GpioLine } from '../hal/gpio.js';
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
  close(): Promise<void>;
}

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
 */
interface Closable {
  close(): Promise<void>;
}

/** Handed to a check's `open`: opens GPIO lines by board name and keeps handles to close later. */
export interface Handles {
  line(name: string): Promise<GpioLine>;
  hold<T extends Closable>(handle: T): T;
}

/** Errors after which the handles are reopened on the next run: the device went away and may come back. */
const reopenAfter = new Set(['ERR_HAL_CLOSED', 'ERR_HAL_NOT_FOUND']);

export interface DriverCheckOptions<D extends Driver> {
  /** Judgement beyond the board's ranges: flags, the part's own limits. */
  assess?: (reading: Reading, driver: D, options: DriverCallOptions, identity: Identity) => Promise<Judgement> | Judgement;
  /** Throws when the identity found is not the one the board entry expects. */
  verify?: (identity: Identity) => void;
}

export class DriverCheck<D extends Driver> implements ComponentCheck {
  private driver: D | undefined;
  private readonly held: Closable[] = [];

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
    line: async (name) => this.handles.hold(await this.board.gpio.open(gpioSpec(this.board, name))),
    hold: (handle) => {
      this.held.push(handle);
      return handle;
    },
  };

  async run(options: DriverCallOptions): Promise<CheckResult> {
    try {
      this.driver ??= await this.open(this.handles);
      const identity = await this.driver.identify(options);
      this.verify(identity);
      const reading = await this.driver.read(options);
      const own = judge(reading, this.config.thresholds);
      const extra = await this.assess(reading, this.driver, options, identity);
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
    this.line ??= await this.board.gpio.open(gpioSpec(this.board, this.config.line));
    const value = await this.line.read();
    const ok = value === this.config.expect;
    return {
      health: ok ? 'ok' : 'failed',
      reasons: ok ? [] : [`line ${this.config.line} reads ${value}, expected ${this.config.expect}`],
      reading: { value },
    };
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
