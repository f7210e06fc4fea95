/**
 * How the sim board models each component kind, one entry per kind: what it builds (a chip model
 * behind the component's I2C addresses, a NIC interface, a serial peer) and which GPIO lines the
 * part drives. What a kind is in the board entry is config/component-kinds.ts; how the firmware
 * diagnoses it is firmware/component-kinds.ts.
 */
import type { BoardConfig, GpioValue } from '../config/board-config.js';
import { type ComponentConfig, type ComponentKind, type ComponentOf, i2cAddress } from '../config/component-kinds.js';
import { HalNotFoundError } from '../hal/errors.js';
import { Bme280Model } from './chips/bme280.js';
import type { ChipContext } from './chips/context.js';
import { Ina219Model } from './chips/ina219.js';
import { Lm75Model } from './chips/lm75.js';
import { SfpModel } from './chips/sfp.js';
import { Tmp102Model } from './chips/tmp102.js';
import type { I2cDeviceModel, SimI2cBus } from './i2c-bus.js';
import type { SimNic } from './nic.js';
import { ModbusRtuPeer } from './peers/modbus-rtu.js';
import { NmeaPeer } from './peers/nmea.js';
import type { SimSerialBinding, SimTransceiver } from './serial.js';
import { type SimHealth, SimClockModel, SimMemoryModel, SimPowerModel, SimStorageModel, SimThermalModel } from './health.js';

/** What the sim board offers a kind's model while it is built. */
export interface SimBuildContext {
  readonly config: Readonly<BoardConfig>;
  /** The model's clock, faults, fault target (the component id) and initial values. */
  readonly chip: ChipContext;
  bus(id: string): SimI2cBus;
  readonly nic: SimNic;
  readonly serialBinding: SimSerialBinding;
  /** A board GPIO line's physical level now (the line is defined once every part is built). */
  gpioLevel(name: string): GpioValue;
  readonly health: SimHealth;
}

/** What a built component leaves on the board. */
export interface SimPart {
  /** The model whose `Quantity` fields `SimBoard.setQuantities` sets by name. */
  model?: object;
  /** GPIO lines the part drives, by board line name: the physical level now. */
  sources?: Record<string, () => GpioValue>;
  /** GPIO lines the part holds at a resting physical level, by board line name. */
  levels?: Record<string, GpioValue>;
}

export interface ComponentModel<K extends ComponentKind> {
  build(component: Readonly<ComponentOf<K>>, board: SimBuildContext): SimPart;
}

/** A register-level chip behind the component's one address. */
function chip<C extends { id: string; bus: string; address: number }>(
  create: (component: Readonly<C>, context: ChipContext) => I2cDeviceModel,
): { build(component: Readonly<C>, board: SimBuildContext): SimPart } {
  return {
    build: (component, board) => {
      const model = create(component, board.chip);
      board.bus(component.bus).attach(component.address, model, component.id);
      return { model };
    },
  };
}

/** The physical level a line rests at for a logical value. */
export function physicalLevel(line: { activeLow?: boolean }, logical: GpioValue): GpioValue {
  return (line.activeLow ? logical ^ 1 : logical) as GpioValue;
}

export const componentModels = {
  tmp102: chip((_, context) => new Tmp102Model(context)),
  lm75: chip((_, context) => new Lm75Model(context)),
  bme280: chip((_, context) => new Bme280Model(context)),
  ina219: chip((component: Readonly<ComponentOf<'ina219'>>, context) => new Ina219Model(context, { shuntOhms: component.shuntOhms })),
  sfp: {
    build: (component, board) => {
      const model = new SfpModel(board.chip);
      const bus = board.bus(component.bus);
      bus.attach(i2cAddress(component, 'address'), model.a0, component.id);
      bus.attach(i2cAddress(component, 'ddmAddress'), model.a2, component.id);
      const { modDef0, los, txFault } = component.lines ?? {};
      // MOD_DEF0 is grounded by a present module; TX_FAULT is open-collector, high when asserted; LOS as A0h byte 65 says.
      const sources: Record<string, () => GpioValue> = {};
      if (modDef0) sources[modDef0] = () => (model.present ? 0 : 1);
      if (los) sources[los] = () => model.losPin;
      if (txFault) sources[txFault] = () => (model.txFault ? 1 : 0);
      return { model, sources };
    },
  },
  ethernet: {
    build: (component, board) => {
      board.nic.addInterface(component.interface, { faultTarget: component.id });
      return {};
    },
  },
  'serial-peer': {
    build: (component, board) => {
      const port = (board.config.serial ?? []).find((p) => p.id === component.port);
      if (!port) throw new HalNotFoundError(`board ${board.config.id} has no serial port "${component.port}"`, { target: component.port });
      const peer = component.protocol === 'modbus-rtu' ? new ModbusRtuPeer({ unitId: component.unitId ?? 1 }) : new NmeaPeer();
      // The board entry's rs485 settings describe the wiring too: DE on RTS (behind an inverter when RTS is low while sending) or on deLine.
      const rs485 = port.rs485;
      const deLine = rs485?.deLine;
      const transceiver: SimTransceiver | undefined = rs485 && {
        de:
          rs485.direction === 'gpio' && deLine !== undefined
            ? { line: () => (board.gpioLevel(deLine) ^ (board.config.gpio?.[deLine]?.activeLow ? 1 : 0)) as GpioValue }
            : { rts: { inverted: rs485.rtsWhileSending === 'low' } },
        echo: rs485.echo ?? false,
      };
      board.serialBinding.addPeer(port.path, peer, component.id, transceiver ? { transceiver } : {});
      return {};
    },
  },
  'gpio-status': {
    build: (component, board) => {
      const line = board.config.gpio?.[component.line];
      return line ? { levels: { [component.line]: physicalLevel(line, component.expect) } } : {};
    },
  },
  // The board's watchdog entry is the part (SimBoard builds it); the component only reads its state.
  watchdog: { build: () => ({}) },
  power: {
    build: (_, board) => {
      board.health.powerModel = new SimPowerModel(board.chip);
      return { model: board.health.powerModel };
    },
  },
  'soc-temperature': {
    build: (component, board) => {
      const model = new SimThermalModel(board.chip, component.zone ?? 'cpu-thermal');
      board.health.zones.set(component.zone, model);
      return { model };
    },
  },
  storage: {
    build: (component, board) => {
      const mountPoint = component.mountPoint ?? '/';
      const model = new SimStorageModel(board.chip, mountPoint, component.device);
      board.health.mounts.set(mountPoint, model);
      return { model };
    },
  },
  'clock-sync': {
    build: (_, board) => {
      board.health.clockModel = new SimClockModel(board.chip);
      return { model: board.health.clockModel };
    },
  },
  'memory-pressure': {
    build: (_, board) => {
      board.health.memoryModel = new SimMemoryModel(board.chip);
      return { model: board.health.memoryModel };
    },
  },
} satisfies { [K in ComponentKind]: ComponentModel<K> };

/** The sim board's entry for a component's kind. */
export function componentModel(component: Readonly<ComponentConfig>): ComponentModel<ComponentKind> {
  return componentModels[component.kind] as unknown as ComponentModel<ComponentKind>;
}
