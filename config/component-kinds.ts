/**
 * The component kinds a board entry can name, one registry entry per kind: its configuration shape,
 * the quantities its driver reads (so the keys its `thresholds` and `sim.initial` may use, and its
 * Modbus registers), which fields are I2C addresses, and which fields point at other entries of the
 * board. Code that treats every kind alike (duplicate addresses, broken references, the register map,
 * the self-check's identity rows) iterates this table instead of switching on the kind.
 *
 * The driver that diagnoses a kind (firmware/component-kinds.ts) and the model that simulates it
 * (sim/component-models.ts) have registries of their own, keyed the same way; each is typed so that
 * TypeScript fails when a kind lacks its entry. boards.schema.json repeats the kinds and quantities
 * (a JSON schema cannot import them); test/boards.test.ts keeps the two equal.
 */
import type { GpioValue, Range } from './board-config.js';

interface ComponentBase {
  id: string;
  /** What it is, for people: "board temperature", "uplink SFP". */
  description?: string;
  /** Per-diagnosis timeout. Default 100 ms. */
  timeoutMs?: number;
  /** Keyed by the kind's quantity names (`componentKinds[kind].quantities`); the schema rejects any other key. */
  thresholds?: Record<string, Range>;
}

interface I2cComponentBase extends ComponentBase {
  bus: string;
  address: number;
}

export interface Tmp102Component extends I2cComponentBase {
  kind: 'tmp102';
}

export interface Lm75Component extends I2cComponentBase {
  kind: 'lm75';
  /**
   * How the part is proven: `detect` by the register tricks of the kernel's lm75_detect, which only
   * the National LM75 and LM75A pass; `declared` takes the board entry's word for it, as the kernel
   * does for a device instantiated explicitly - for clones (LM75B, TMP75, DS75...) that lm75_detect
   * rejects on purpose. Default `detect`.
   */
  identity?: 'detect' | 'declared';
}

export interface Bme280Component extends I2cComponentBase {
  kind: 'bme280';
}

export interface Ina219Component extends I2cComponentBase {
  kind: 'ina219';
  /** Shunt resistor in ohms. */
  shuntOhms: number;
  /**
   * Largest current expected, sets the calibration. `shuntOhms * maxCurrentA` must lie within
   * 20.48-320 mV: above, the shunt ADC saturates; below, the 16-bit calibration register overflows.
   */
  maxCurrentA: number;
}

export interface SfpComponent extends ComponentBase {
  kind: 'sfp';
  bus: string;
  /** Identity EEPROM, SFF-8472 A0h. Default 0x50. */
  address?: number;
  /** Digital diagnostics, SFF-8472 A2h. Default 0x51. */
  ddmAddress?: number;
  /** Names of input entries in the board's `gpio` table. */
  lines?: { modDef0?: string; los?: string; txFault?: string };
  /** Expected identity; a module that does not match is failed. */
  expect?: { vendor?: string; partNumber?: string };
}

export interface EthernetComponent extends ComponentBase {
  kind: 'ethernet';
  /** Name of an entry in the board's `net` list. */
  interface: string;
  /** Name of an output entry in the board's `gpio` table driving the link LED. */
  ledLine?: string;
  /** Minimum speed for ok; below it the link is degraded. */
  minSpeedMbps?: number;
}

export interface SerialPeerComponent extends ComponentBase {
  kind: 'serial-peer';
  /** Id of an entry in the board's `serial` list. */
  port: string;
  protocol: 'modbus-rtu' | 'nmea';
  /** Modbus unit id to probe. Default 1. */
  unitId?: number;
  /**
   * A connect's diagnosis takes the peer's state from the firmware's last poll of it (the background
   * refresh, every `refreshMs`) when that poll finished at most this many ms ago, instead of a round
   * trip of its own (~25 ms for Modbus RTU at 19200 baud, longer than all the I2C reads together);
   * older, never polled or failed, the connect polls it. 0: every connect polls. Default 2500.
   */
  stateMaxAgeMs?: number;
}

export interface GpioStatusComponent extends ComponentBase {
  kind: 'gpio-status';
  /** Name of an input entry in the board's `gpio` table. */
  line: string;
  /** The logical value that means healthy. */
  expect: GpioValue;
}

/** Diagnoses the board's `watchdog` entry, which must exist. */
export interface WatchdogComponent extends ComponentBase {
  kind: 'watchdog';
}

/**
 * The board's supply: under-voltage and throttling from the Raspberry Pi firmware, as 0/1 quantities
 * (judged by the entry's thresholds, e.g. `underVoltage: { max: 0 }`).
 */
export interface PowerComponent extends ComponentBase {
  kind: 'power';
}

/** The SoC's thermal zone; past a `critical` trip point it is failed, past `hot` or `passive` degraded. */
export interface SocTemperatureComponent extends ComponentBase {
  kind: 'soc-temperature';
  /** The thermal zone's type (`cpu-thermal`). Default: thermal_zone0. */
  zone?: string;
}

/** A mounted file system (read-only, space used) and, for an eMMC, its wear. */
export interface StorageComponent extends ComponentBase {
  kind: 'storage';
  /** Default `/`. */
  mountPoint?: string;
  /** Block device whose eMMC wear to read (`mmcblk0`); absent: wear is not read. */
  device?: string;
}

/** Whether the system clock is synchronised (systemd-timesyncd). */
export interface ClockSyncComponent extends ComponentBase {
  kind: 'clock-sync';
}

/** Memory pressure stall information (PSI). */
export interface MemoryPressureComponent extends ComponentBase {
  kind: 'memory-pressure';
}

export type ComponentConfig =
  | Tmp102Component
  | Lm75Component
  | Bme280Component
  | Ina219Component
  | SfpComponent
  | EthernetComponent
  | SerialPeerComponent
  | GpioStatusComponent
  | WatchdogComponent
  | PowerComponent
  | SocTemperatureComponent
  | StorageComponent
  | ClockSyncComponent
  | MemoryPressureComponent;

export type ComponentKind = ComponentConfig['kind'];

/** The configuration of one kind: `ComponentOf<'sfp'>` is `SfpComponent`. */
export type ComponentOf<K extends ComponentKind> = Extract<ComponentConfig, { kind: K }>;

/** A field of a component that names another entry of the board. */
export type ComponentReference<K extends ComponentKind = ComponentKind> =
  | { field: keyof ComponentOf<K> & string; to: 'i2c-bus' | 'serial-port' | 'net-interface' }
  /** `roles`: the field is an object of line names by role (`lines: { los: "sfp-los" }`). */
  | { field: keyof ComponentOf<K> & string; to: 'gpio-line'; direction: 'in' | 'out'; roles?: true }
  /** The board's `watchdog` entry must exist. */
  | { to: 'watchdog' };

/** A field holding the I2C address of a chip on the component's `bus`, with the default the schema fills in. */
export interface I2cAddressField<K extends ComponentKind = ComponentKind> {
  field: keyof ComponentOf<K> & string;
  default?: number;
}

/** A value problem a schema cannot express: the field that holds it and what is wrong. */
export interface ComponentIssue {
  field: string;
  message: string;
}

export interface ComponentKindSpec<K extends ComponentKind = ComponentKind> {
  /** What the driver reads, in Modbus register order. */
  quantities: readonly string[];
  /** For chips on an I2C bus (the component's `bus` field): where their addresses are. */
  i2c?: readonly I2cAddressField<K>[];
  references: readonly ComponentReference<K>[];
  /** Checks beyond the schema. */
  check?: (component: Readonly<ComponentOf<K>>) => ComponentIssue[];
}

/** INA219 datasheet: the shunt ADC spans +-320 mV (PGA /8), and calibration = 0.04096 / (Imax/32768 * R) must fit 16 bits. */
const ina219MaxShuntV = 0.32;
const ina219MinShuntV = (0.04096 * 32768) / 0xffff;

const onI2cBus = { field: 'bus', to: 'i2c-bus' } as const;

export const componentKinds = {
  tmp102: { quantities: ['temperatureC'], i2c: [{ field: 'address' }], references: [onI2cBus] },
  lm75: { quantities: ['temperatureC'], i2c: [{ field: 'address' }], references: [onI2cBus] },
  bme280: { quantities: ['temperatureC', 'pressurePa', 'humidityPct'], i2c: [{ field: 'address' }], references: [onI2cBus] },
  ina219: {
    quantities: ['busVoltageV', 'shuntVoltageV', 'currentA', 'powerW'],
    i2c: [{ field: 'address' }],
    references: [onI2cBus],
    check: (component) => {
      const fullScale = component.shuntOhms * component.maxCurrentA;
      // 0.1 ohm x 3.2 A is 0.32000000000000006 V in binary floating point, and exactly the limit.
      const slack = 1e-9;
      if (fullScale <= ina219MaxShuntV + slack && fullScale >= ina219MinShuntV - slack) return [];
      return [
        {
          field: 'maxCurrentA',
          message: `${component.maxCurrentA} A through ${component.shuntOhms} ohm is ${(fullScale * 1000).toFixed(2)} mV; the INA219 needs ${(ina219MinShuntV * 1000).toFixed(2)}-${ina219MaxShuntV * 1000} mV at full scale`,
        },
      ];
    },
  },
  sfp: {
    quantities: ['temperatureC', 'vccV', 'txBiasMa', 'txPowerMw', 'rxPowerMw'],
    i2c: [
      { field: 'address', default: 0x50 },
      { field: 'ddmAddress', default: 0x51 },
    ],
    references: [onI2cBus, { field: 'lines', to: 'gpio-line', direction: 'in', roles: true }],
  },
  ethernet: {
    quantities: ['speedMbps', 'crcErrorsPerS', 'rxErrorsPerS'],
    references: [
      { field: 'interface', to: 'net-interface' },
      { field: 'ledLine', to: 'gpio-line', direction: 'out' },
    ],
  },
  'serial-peer': {
    quantities: ['latencyMs'],
    references: [{ field: 'port', to: 'serial-port' }],
    // The probe's deadline is the component's timeoutMs: below the latency limit, a slave answering
    // between warnMax and max would fail at the deadline instead of being judged degraded.
    check: (component) => {
      const max = component.thresholds?.latencyMs?.max;
      const timeoutMs = component.timeoutMs ?? 100;
      return max !== undefined && timeoutMs <= max
        ? [{ field: 'timeoutMs', message: `a ${timeoutMs} ms deadline cuts the probe off before its latencyMs max of ${max} ms; make timeoutMs larger than ${max}` }]
        : [];
    },
  },
  'gpio-status': { quantities: [], references: [{ field: 'line', to: 'gpio-line', direction: 'in' }] },
  watchdog: { quantities: [], references: [{ to: 'watchdog' }] },
  power: { quantities: ['underVoltage', 'underVoltageOccurred', 'throttled', 'throttlingOccurred'], references: [] },
  'soc-temperature': { quantities: ['temperatureC'], references: [] },
  storage: { quantities: ['readOnly', 'usedPct', 'lifeTimeUsedPct', 'preEol'], references: [] },
  'clock-sync': { quantities: ['synchronized', 'sinceSyncS'], references: [] },
  'memory-pressure': { quantities: ['someAvg10', 'someAvg60', 'fullAvg10', 'fullAvg60'], references: [] },
} as const satisfies { [K in ComponentKind]: ComponentKindSpec<K> };

/** The registry entry of a component's kind, with field names as plain strings for generic code. */
export function kindSpec(kind: ComponentKind): {
  quantities: readonly string[];
  i2c?: readonly { field: string; default?: number }[];
  references: readonly ({ field: string; to: 'i2c-bus' | 'serial-port' | 'net-interface' } | { field: string; to: 'gpio-line'; direction: 'in' | 'out'; roles?: true } | { to: 'watchdog' })[];
  check?: (component: Readonly<ComponentConfig>) => ComponentIssue[];
} {
  return componentKinds[kind] as ReturnType<typeof kindSpec>;
}

/** The I2C addresses a component occupies on its bus, defaults applied, by field. */
export function i2cAddresses(component: Readonly<ComponentConfig>): { field: string; address: number }[] {
  return (kindSpec(component.kind).i2c ?? []).flatMap(({ field, default: fallback }) => {
    const value = (component as unknown as Record<string, unknown>)[field];
    const address = typeof value === 'number' ? value : fallback;
    return address === undefined ? [] : [{ field, address }];
  });
}

/** The address in one of a chip component's address fields, the registry's default when the entry leaves it out. */
export function i2cAddress<K extends ComponentKind>(component: Readonly<ComponentOf<K>>, field: I2cAddressField<K>['field']): number {
  const value = (component as unknown as Record<string, unknown>)[field];
  if (typeof value === 'number') return value;
  return (kindSpec(component.kind).i2c ?? []).find((entry) => entry.field === field)?.default as number;
}

/** The I2C bus a chip component sits on; undefined for kinds that are not on one. */
export function i2cBusOf(component: Readonly<ComponentConfig>): string | undefined {
  return kindSpec(component.kind).i2c ? (component as unknown as { bus: string }).bus : undefined;
}

/**
 * The GPIO line names a component refers to: the field (and, for an object of lines, the role within
 * it) that holds each, and the direction the line needs.
 */
export function gpioReferences(component: Readonly<ComponentConfig>): { field: string; role?: string; name: string; direction: 'in' | 'out' }[] {
  const found: { field: string; role?: string; name: string; direction: 'in' | 'out' }[] = [];
  for (const reference of kindSpec(component.kind).references) {
    if (reference.to !== 'gpio-line') continue;
    const value = (component as unknown as Record<string, unknown>)[reference.field];
    if (typeof value === 'string') found.push({ field: reference.field, name: value, direction: reference.direction });
    else if (reference.roles && typeof value === 'object' && value !== null) {
      for (const [role, name] of Object.entries(value)) {
        if (typeof name === 'string') found.push({ field: reference.field, role, name, direction: reference.direction });
      }
    }
  }
  return found;
}
