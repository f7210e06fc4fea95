/**
 * The sim board: a board entry from boards.json brought to life behind the same HAL interfaces a real
 * board offers. Chip models sit on simulated I2C buses, GPIO lines carry levels, serial peers answer,
 * the NIC counts packets, the watchdog resets the board when starved - all on one virtual clock, all
 * breakable through one fault registry.
 */
import { randomUUID } from 'node:crypto';
import type { BoardConfig } from '../config/board-config.js';
import type { BoardHal } from '../hal/board.js';
import type { BootIdentity } from '../hal/boot.js';
import { HalNotFoundError } from '../hal/errors.js';
import type { GpioValue } from '../hal/gpio.js';
import type { I2cBus } from '../hal/i2c.js';
import { type SerialController, openSerialPort } from '../hal/serial.js';
import type { Watchdog } from '../hal/watchdog.js';
import { Quantity } from './chips/context.js';
import { type SimPart, componentModel, physicalLevel } from './component-models.js';
import { VirtualClock } from './clock.js';
import { type ActiveFault, FaultError, type FaultEvent, FaultRegistry, type FaultSpec } from './faults.js';
import { SimGpio } from './gpio.js';
import { SimHealth } from './health.js';
import { SimI2cBus } from './i2c-bus.js';
import { SimNic } from './nic.js';
import { type SimPortBinding, SimSerialBinding } from './serial.js';
import { SimWatchdog } from './watchdog.js';

export interface SimBoardOptions {
  /** Share a clock between boards or start at a fixed time; default a new clock at the wall-clock now. */
  clock?: VirtualClock;
}

export interface BoardResetEvent {
  cause: 'watchdog';
  at: number;
  count: number;
}

export class SimBoard implements BoardHal {
  readonly clock: VirtualClock;
  readonly faults: FaultRegistry;
  readonly gpio: SimGpio;
  readonly nic: SimNic;
  readonly net: SimNic;
  // Private: its ports are binding-mock's, whose types the package's declarations must not need.
  private readonly serialBinding: SimSerialBinding;
  readonly serial: SerialController;
  readonly health = new SimHealth();
  /** Models by component id, for tests and scenarios that set physical values. */
  readonly models = new Map<string, object>();
  private readonly parts: SimPart[] = [];
  private readonly buses = new Map<string, SimI2cBus>();
  private readonly simWatchdog: SimWatchdog | undefined;
  private readonly resetListeners = new Set<(event: BoardResetEvent) => void>();
  private readonly unsubscribeFaults: () => void;
  /** Powered on when built; each reset is a new boot with a new id, as boot_id is on Linux. */
  private bootIdentity: BootIdentity;
  resets = 0;

  constructor(
    readonly config: Readonly<BoardConfig>,
    options: SimBoardOptions = {},
  ) {
    this.clock = options.clock ?? new VirtualClock();
    this.bootIdentity = { id: randomUUID(), bootedAt: this.clock.now(), powerOn: true };
    this.faults = new FaultRegistry(this.clock);
    this.gpio = new SimGpio(this.clock, this.faults);
    this.nic = new SimNic(this.clock, this.faults);
    this.net = this.nic;
    this.serialBinding = new SimSerialBinding(this.clock, this.faults);
    const binding = this.serialBinding;
    const clock = this.clock;
    const gpio = this.gpio;
    this.serial = { open: (spec) => openSerialPort(binding, clock, spec, { gpio, rs485Ioctl: (port) => (port as SimPortBinding).rs485Ioctl() }) };

    for (const bus of config.i2c ?? []) {
      this.buses.set(
        bus.id,
        new SimI2cBus(bus.id, this.clock, this.faults, { defaultTimeoutMs: bus.timeoutMs ?? 50, adapter: bus.adapter ?? 'generic', clockHz: bus.clockHz ?? 100_000 }),
      );
    }
    for (const component of config.components) {
      const part = componentModel(component).build(component, {
        config,
        chip: { clock: this.clock, faults: this.faults, id: component.id, initial: config.sim?.initial?.[component.id] ?? {} },
        bus: (id) => this.bus(id),
        nic: this.nic,
        serialBinding: this.serialBinding,
        gpioLevel: (name) => this.gpio.level(name),
        health: this.health,
      });
      if (part.model) this.models.set(component.id, part.model);
      this.parts.push(part);
    }
    this.defineGpioLines();

    if (config.watchdog) {
      const component = config.components.find((c) => c.kind === 'watchdog');
      this.simWatchdog = new SimWatchdog(config.watchdog.device, this.clock, this.faults, {
        faultTarget: component?.id ?? 'watchdog',
        ...(config.watchdog.driver === 'bcm2835'
          ? { timeoutS: 15, maxTimeoutS: 15, identity: 'Broadcom BCM2835 Watchdog timer', reportsCardReset: false }
          : { timeoutS: config.watchdog.timeoutS }),
        onExpire: () => this.reset(),
      });
    }
    this.unsubscribeFaults = this.faults.on((event: FaultEvent) => {
      if (event.type !== 'injected') this.gpio.refresh();
    });
  }

  private bus(id: string): SimI2cBus {
    const bus = this.buses.get(id);
    if (!bus) throw new HalNotFoundError(`board ${this.config.id} has no I2C bus "${id}"`, { target: id });
    return bus;
  }

  private defineGpioLines(): void {
    const sources = new Map<string, () => GpioValue>();
    const levels = new Map<string, GpioValue>();
    for (const part of this.parts) {
      for (const [name, source] of Object.entries(part.sources ?? {})) sources.set(name, source);
      for (const [name, level] of Object.entries(part.levels ?? {})) levels.set(name, level);
    }
    for (const [name, line] of Object.entries(this.config.gpio ?? {})) {
      const source = sources.get(name);
      this.gpio.define(name, line, source ? { source } : { level: levels.get(name) ?? physicalLevel(line, line.initial ?? 0) });
    }
  }

  async i2c(busId: string): Promise<I2cBus> {
    return this.bus(busId);
  }

  /** The simulated buses, for counting what went over them. */
  get i2cBuses(): SimI2cBus[] {
    return [...this.buses.values()];
  }

  async watchdog(): Promise<Watchdog> {
    if (!this.simWatchdog) throw new HalNotFoundError(`board ${this.config.id} has no watchdog`, { target: 'watchdog' });
    return this.simWatchdog;
  }

  /** The simulated watchdog, for status displays; undefined when the entry has none. */
  get watchdogModel(): SimWatchdog | undefined {
    return this.simWatchdog;
  }

  /**
   * Sets physical values of a chip model by quantity name (`{ temperatureC: 40 }`), as a scenario or
   * the control page would: the next register read shows them.
   */
  setQuantities(componentId: string, values: Readonly<Record<string, number>>): void {
    const model = this.models.get(componentId);
    if (!model) throw new FaultError('ERR_SIM_FAULT_TARGET', `no simulated chip "${componentId}"; chips: ${[...this.models.keys()].join(', ')}`);
    for (const [name, value] of Object.entries(values)) {
      const quantity = (model as unknown as Record<string, unknown>)[name];
      if (!(quantity instanceof Quantity)) {
        throw new FaultError('ERR_SIM_FAULT_SPEC', `chip "${componentId}" has no quantity "${name}"`);
      }
      quantity.set(value);
    }
    this.gpio.refresh();
  }

  inject(spec: FaultSpec): ActiveFault {
    return this.faults.inject(spec);
  }

  /** Board reset by the watchdog: listeners (the firmware runner) restart the firmware. */
  onReset(listener: (event: BoardResetEvent) => void): () => void {
    this.resetListeners.add(listener);
    return () => this.resetListeners.delete(listener);
  }

  async boot(): Promise<BootIdentity> {
    return this.bootIdentity;
  }

  private reset(): void {
    this.resets += 1;
    this.bootIdentity = { id: randomUUID(), bootedAt: this.clock.now() };
    const event: BoardResetEvent = { cause: 'watchdog', at: this.clock.now(), count: this.resets };
    for (const listener of this.resetListeners) listener(event);
  }

  async close(): Promise<void> {
    this.unsubscribeFaults();
    await this.gpio.close();
    for (const bus of [...this.buses.values()].reverse()) await bus.close();
  }
}
