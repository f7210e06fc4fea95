/**
 * The shape of a `boards.json` entry. `boards.schema.json` is the validated form of these types;
 * `loadBoards` (hal/boards.ts) checks a file against it once, at start-up, and freezes the result.
 */
import type { GpioEdge, GpioValue } from './gpio.js';

/** A range for one quantity a driver reads. Past `warn*` the component is degraded; past `min`/`max`, failed. */
export interface Range {
  min?: number;
  max?: number;
  warnMin?: number;
  warnMax?: number;
}

export interface I2cBusConfig {
  id: string;
  /** Character device on a real board (`/dev/i2c-1`). */
  device: string;
  /** Per-transfer timeout. Default 50 ms. */
  timeoutMs?: number;
}

export interface GpioLineConfig {
  chip: string;
  line: string | number;
  direction: 'in' | 'out';
  activeLow?: boolean;
  edge?: GpioEdge;
  debounceMs?: number;
  initial?: GpioValue;
}

export interface SerialPortConfig {
  id: string;
  path: string;
  baudRate: number;
  dataBits?: 7 | 8;
  stopBits?: 1 | 2;
  parity?: 'none' | 'even' | 'odd';
}

export interface WatchdogConfig {
  device: string;
  /** Requested timeout in seconds; the hardware may apply less. */
  timeoutS: number;
  /** How often the firmware kicks it. Default a third of the timeout. */
  kickIntervalMs?: number;
}

export interface NetInterfaceConfig {
  /** Kernel interface name (`eth0`, `end0` on Bookworm). */
  name: string;
}

interface ComponentBase {
  id: string;
  /** What it is, for people: "board temperature", "uplink SFP". */
  description?: string;
  /** Per-diagnosis timeout. Default 100 ms. */
  timeoutMs?: number;
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
}

export interface Bme280Component extends I2cComponentBase {
  kind: 'bme280';
}

export interface Ina219Component extends I2cComponentBase {
  kind: 'ina219';
  /** Shunt resistor in ohms. */
  shuntOhms: number;
  /** Largest current expected, sets the calibration. */
  maxCurrentA: number;
}

export interface SfpComponent extends ComponentBase {
  kind: 'sfp';
  bus: string;
  /** Identity EEPROM, SFF-8472 A0h. Default 0x50. */
  address?: number;
  /** Digital diagnostics, SFF-8472 A2h. Default 0x51. */
  ddmAddress?: number;
  /** Names of entries in the board's `gpio` table. */
  lines?: { modDef0?: string; los?: string; txFault?: string };
  /** Expected identity; a module that does not match is failed. */
  expect?: { vendor?: string; partNumber?: string };
}

export interface EthernetComponent extends ComponentBase {
  kind: 'ethernet';
  interface: string;
  /** Name of an entry in the board's `gpio` table driving the link LED. */
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
}

export interface GpioStatusComponent extends ComponentBase {
  kind: 'gpio-status';
  /** Name of an input entry in the board's `gpio` table. */
  line: string;
  /** The logical value that means healthy. */
  expect: GpioValue;
}

export interface WatchdogComponent extends ComponentBase {
  kind: 'watchdog';
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
  | WatchdogComponent;

export type ComponentKind = ComponentConfig['kind'];

export interface GatePolicy {
  mode?: 'after' | 'before';
  onFail?: 'reset' | 'close';
  reuse?: 'never' | 'while-held';
  maxAgeMs?: number;
  recheckMs?: number;
  /** before mode: let SYNs through when the firmware is gone (default) instead of dropping them. */
  failClosed?: boolean;
  /** NFQUEUE number for before mode. */
  queue?: number;
  maxConnections?: number;
  idleTimeoutMs?: number;
}

export interface ServiceConfig {
  id: string;
  protocol: 'modbus-tcp';
  /** `HOST:PORT`; port 0 picks a free port. */
  listen: string;
  dependsOn: string[];
  gate?: GatePolicy;
  /** Modbus: unit ids served. Default [1]. 0 and 255 are always accepted. */
  unitIds?: number[];
  /** Modbus: client addresses allowed to write; absent means everyone, empty means no one. */
  writeAllow?: string[];
}

export interface SimConfig {
  /** Initial physical values of simulated components, by component id then quantity. */
  initial?: Record<string, Record<string, number>>;
}

export interface BoardConfig {
  id: string;
  name: string;
  /** Which HAL backend the firmware uses on this board. */
  backend: 'sim' | 'linux';
  i2c?: I2cBusConfig[];
  gpio?: Record<string, GpioLineConfig>;
  serial?: SerialPortConfig[];
  watchdog?: WatchdogConfig;
  net?: NetInterfaceConfig[];
  /** Name of an output entry in `gpio` that shows the firmware's status. */
  statusLed?: string;
  components: ComponentConfig[];
  services: ServiceConfig[];
  sim?: SimConfig;
}

export interface BoardsFile {
  $schema?: string;
  boards: BoardConfig[];
}
