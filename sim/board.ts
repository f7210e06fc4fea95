/**
 * The sim board: a board entry from boards.json brought to life behind the same HAL interfaces a real
 * board offers. Chip models sit on simulated I2C buses, GPIO lines carry levels, serial peers answer,
 * the NIC counts packets, the watchdog resets the board when starved - all on one virtual clock, all
 * breakable through one fault registry.
 */
import type { BoardConfig, ComponentConfig, GpioLineConfig } from '../config/board-config.js';
import type { BoardHal } from '../hal/board.js';
import { HalNotFoundError } from '../hal/errors.js';
import type { GpioValue } from '../hal/gpio.js';
import type { I2cBus } from '../hal/i2c.js';
import { type SerialController, openSerialPort } from '../hal/serial.js';
import type { Watchdog } from '../hal/watchdog.js';
import { Bme280Model } from './chips/bme280.js';
import { type ChipContext, Quantity } from './chips/context.js';
import { Ina219Model } from './chips/ina219.js';
import { Lm75Model } from './chips/lm75.js';
import { SfpModel } from './chips/sfp.js';
import { Tmp102Model } from './chips/tmp102.js';
import { VirtualClock } from './clock.js';
import { type ActiveFault, FaultError, type FaultEvent, FaultRegistry, type FaultSpec } from './faults.js';
import { SimGpio } from './gpio.js';
import { SimI2cBus } from './i2c-bus.js';
import { SimNic } from './nic.js';
import { ModbusRtuPeer } from './peers/modbus-rtu.js';
import { NmeaPeer } from './peers/nmea.js';
import { SimSerialBinding } from './serial.js';
import { SimWatchdog } from './watchdog.js';

export type ChipModel = Tmp102Model | Lm75Model | Bme280Model | Ina219Model | SfpModel;

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
  readonly serialBinding: SimSerialBinding;
  readonly serial: SerialController;
  /** Chip models by component id, for tests and scenarios that set physical values. */
  readonly models = new Map<string, ChipModel>();
  private readonly buses = new Map<string, SimI2cBus>();
  private readonly simWatchdog: SimWatchdog | undefined;
  private readonly resetListeners = new Set<(event: BoardResetEvent) => void>();
  private readonly unsubscribeFaults: () => void;
  resets = 0;

  constructor(
    readonly config: Readonly<BoardConfig>,
    options: SimBoardOptions = {},
  ) {
    this.clock = options.clock ?? new VirtualClock();
    this.faults = new FaultRegistry(this.clock);
    this.gpio = new SimGpio(this.clock, this.faults);
    this.nic = new SimNic(this.clock, this.faults);
    this.net = this.nic;
    this.serialBinding = new SimSerialBinding(this.clock, this.faults);
    const binding = this.serialBinding;
    const clock = this.clock;
    this.serial = { open: (spec) => openSerialPort(binding, clock, spec) };

    for (const bus of config.i2c ?? []) {
      this.buses.set(bus.id, new SimI2cBus(bus.id, this.clock, this.faults, bus.timeoutMs ?? 50));
    }
    for (const component of config.components) this.build(component);
    this.defineGpioLines();

    if (config.watchdog) {
      const component = config.components.find((c) => c.kind === 'watchdog');
      this.simWatchdog = new SimWatchdog(config.watchdog.device, this.clock, this.faults, {
        faultTarget: component?.id ?? 'watchdog',
        timeoutS: config.watchdog.timeoutS,
        onExpire: () => this.reset(),
      });
    }
    this.unsubscribeFaults = this.faults.on((event: FaultEvent) => {
      if (event.type !== 'injected') this.gpio.refresh();
    });
  }

  private context(component: ComponentConfig): ChipContext {
    return { clock: this.clock, faults: this.faults, id: component.id, initial: this.config.sim?.initial?.[component.id] ?? {} };
  }

  private bus(id: string): SimI2cBus {
    const bus = this.buses.get(id);
    if (!bus) throw new HalNotFoundError(`board ${this.config.id} has no I2C bus "${id}"`, { target: id });
    return bus;
  }

  private build(component: ComponentConfig): void {
    switch (component.kind) {
      case 'tmp102':
      case 'lm75':
      case 'bme280': {
        const Model = { tmp102: Tmp102Model, lm75: Lm75Model, bme280: Bme280Model }[component.kind];
        const model = new Model(this.context(component));
        this.bus(component.bus).attach(component.address, model, component.id);
        this.models.set(component.id, model);
        return;
      }
      case 'ina219': {
        const model = new Ina219Model(this.context(component), { shuntOhms: component.shuntOhms });
        this.bus(component.bus).attach(component.address, model, component.id);
        this.models.set(component.id, model);
        return;
      }
      case 'sfp': {
        const model = new SfpModel(this.context(component));
        const bus = this.bus(component.bus);
        bus.attach(component.address ?? 0x50, model.a0, component.id);
        bus.attach(component.ddmAddress ?? 0x51, model.a2, component.id);
        this.models.set(component.id, model);
        return;
      }
      case 'ethernet':
        this.nic.addInterface(component.interface, { faultTarget: component.id });
        return;
      case 'serial-peer': {
        const port = (this.config.serial ?? []).find((p) => p.id === component.port);
        if (!port) throw new HalNotFoundError(`board ${this.config.id} has no serial port "${component.port}"`, { target: component.port });
        const peer = component.protocol === 'modbus-rtu' ? new ModbusRtuPeer({ unitId: component.unitId ?? 1 }) : new NmeaPeer();
        this.serialBinding.addPeer(port.path, peer, component.id);
        return;
      }
      case 'gpio-status':
      case 'watchdog':
        return;
    }
  }

  private defineGpioLines(): void {
    const sources = new Map<string, () => GpioValue>();
    const levels = new Map<string, GpioValue>();
    const table = this.config.gpio ?? {};
    for (const component of this.config.components) {
      if (component.kind === 'sfp' && component.lines) {
        const model = this.models.get(component.id) as SfpModel;
        const { modDef0, los, txFault } = component.lines;
        // MOD_DEF0 is grounded by a present module; LOS and TX_FAULT are open-collector, high when asserted.
        if (modDef0) sources.set(modDef0, () => (model.present ? 0 : 1));
        if (los) sources.set(los, () => (model.rxLos ? 1 : 0));
        if (txFault) sources.set(txFault, () => (model.txFault ? 1 : 0));
      }
      if (component.kind === 'gpio-status') {
        const line = table[component.line];
        if (line) levels.set(component.line, physicalLevel(line, component.expect));
      }
    }
    for (const [name, line] of Object.entries(table)) {
      const source = sources.get(name);
      this.gpio.define(name, line, source ? { source } : { level: levels.get(name) ?? physicalLevel(line, line.initial ?? 0) });
    }
  }

  async i2c(busId: string): Promise<I2cBus> {
    return this.bus(busId);
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

  private reset(): void {
    this.resets += 1;
    const event: BoardResetEvent = { cause: 'watchdog', at: this.clock.now(), count: this.resets };
    for (const listener of this.resetListeners) listener(event);
  }

  async close(): Promise<void> {
    this.unsubscribeFaults();
    await this.gpio.close();
    for (const bus of [...this.buses.values()].reverse()) await bus.close();
  }
}

/** The physical level a line rests at for a logical value. */
function physicalLevel(line: GpioLineConfig, logical: GpioValue): GpioValue {
  return (line.activeLow ? logical ^ 1 : logical) as GpioValue;
}
