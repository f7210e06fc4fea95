/**
 * How the firmware diagnoses each component kind, one entry per kind: the check the device-state
 * manager runs, the driver alone for chips (the self-check identifies them without reading), and the
 * status LED's blink code. What a kind is in the board entry (quantities, addresses, references) is
 * config/component-kinds.ts; how the sim board models it is sim/component-models.ts.
 */
import type { BoardHal } from '../hal/board.js';
import { type ComponentConfig, type ComponentKind, type ComponentOf, i2cAddress } from '../config/component-kinds.js';
import { Bme280Driver } from '../hal/drivers/bme280.js';
import type { Driver, DriverCallOptions, Identity } from '../hal/drivers/driver.js';
import { EthernetDriver } from '../hal/drivers/ethernet.js';
import { Ina219Driver } from '../hal/drivers/ina219.js';
import { Lm75Driver } from '../hal/drivers/lm75.js';
import { SerialPeerDriver } from '../hal/drivers/serial-peer.js';
import { SfpDriver, type SfpDriverOptions, type SfpPin } from '../hal/drivers/sfp.js';
import { Tmp102Driver } from '../hal/drivers/tmp102.js';
import { ClockSyncDriver, MemoryPressureDriver, PowerDriver, SocTemperatureDriver, StorageDriver } from '../hal/drivers/health.js';
import { HalIdentityError, HalNotFoundError } from '../hal/errors.js';
import type { I2cBus } from '../hal/i2c.js';
import { serialPortSpec } from '../hal/serial.js';
import {
  type CheckContext,
  type ComponentCheck,
  DriverCheck,
  type DriverCheckOptions,
  GpioStatusCheck,
  WatchdogCheck,
  combine,
  flag,
} from './components.js';
import { type Judgement, judge } from './thresholds.js';

export interface ComponentKindDriver<K extends ComponentKind> {
  /**
   * Blinks of the status LED when a component of this kind is the first failed one, by class: 1 sensor
   * or power monitor, 2 network link or SFP, 3 serial peer, 4 GPIO status line, 5 watchdog, 6 the
   * board's own health (power, SoC temperature, storage, clock, memory).
   */
  blinkCode: number;
  /** A chip on an I2C bus: its driver on that bus. `identify()` on it reads identity registers only. */
  chip?: (component: Readonly<ComponentOf<K>>, bus: I2cBus, board: BoardHal) => Driver;
  check: (component: Readonly<ComponentOf<K>>, context: CheckContext) => ComponentCheck;
  /**
   * How old (ms) a state from the firmware's own polling may be for a connect's diagnosis to take it
   * instead of diagnosing again; absent, every connect diagnoses the component.
   */
  stateMaxAgeMs?: (component: Readonly<ComponentOf<K>>) => number;
}

/** The check of a chip: its driver on its bus, opened on first use. */
function chipCheck<K extends ComponentKind, D extends Driver>(
  component: Readonly<ComponentOf<K> & { bus: string }>,
  { board }: CheckContext,
  chip: (component: Readonly<ComponentOf<K>>, bus: I2cBus, board: BoardHal) => D,
  options: DriverCheckOptions<D> = {},
): ComponentCheck {
  return new DriverCheck(component, board, async () => chip(component, await board.i2c(component.bus), board), options);
}

const tmp102 = (component: Readonly<ComponentOf<'tmp102'>>, bus: I2cBus, board: BoardHal) => new Tmp102Driver(bus, component.address, board.clock);
const lm75 = (component: Readonly<ComponentOf<'lm75'>>, bus: I2cBus, board: BoardHal) => new Lm75Driver(bus, component.address, board.clock, component.identity ?? 'detect');
const bme280 = (component: Readonly<ComponentOf<'bme280'>>, bus: I2cBus, board: BoardHal) => new Bme280Driver(bus, component.address, board.clock);
const ina219 = (component: Readonly<ComponentOf<'ina219'>>, bus: I2cBus, board: BoardHal) =>
  new Ina219Driver(bus, component.address, { shuntOhms: component.shuntOhms, maxCurrentA: component.maxCurrentA }, board.clock);
const sfp = (component: Readonly<ComponentOf<'sfp'>>, bus: I2cBus, _board: BoardHal, lines: SfpDriverOptions['lines'] = {}) =>
  new SfpDriver(bus, { address: i2cAddress(component, 'address'), ddmAddress: i2cAddress(component, 'ddmAddress'), lines });

function sfpCheck(component: Readonly<ComponentOf<'sfp'>>, context: CheckContext): ComponentCheck {
  // The thresholds a module stores never change: they are read once per module inserted, when the
  // driver proves a module's identity in full (a new identity object), not on every diagnosis.
  let stored: { identity: Identity; thresholds: Awaited<ReturnType<SfpDriver['thresholds']>> } | undefined;
  const moduleThresholds = async (driver: SfpDriver, options: DriverCallOptions, identity: Identity) => {
    if (stored?.identity !== identity) stored = { identity, thresholds: await driver.thresholds(options) };
    return stored.thresholds;
  };
  const { board } = context;
  return new DriverCheck(
    component,
    board,
    async (handles) => {
      const lines = component.lines ?? {};
      // The check's watcher of each line is the only one: it tells the driver, made below, of the edge
      // (a MOD_DEF0 edge makes it read the identity again) and takes what the driver judges the edge
      // asserts (the LOS polarity is the module's).
      let driver: SfpDriver | undefined;
      const pin = async (which: SfpPin, name: string | undefined) =>
        name === undefined ? {} : { [which]: await handles.line(name, (value) => driver?.edge(which, value)) };
      driver = sfp(component, await board.i2c(component.bus), board, {
        ...(await pin('modDef0', lines.modDef0)),
        ...(await pin('los', lines.los)),
        ...(await pin('txFault', lines.txFault)),
      });
      return driver;
    },
    {
      assess: async (reading, driver, options, identity) =>
        combine(
          reading.present === false ? { health: 'failed', reasons: ['module not present'] } : undefined,
          flag(reading, 'rxLos', 'failed', 'receiver loss of signal (RX_LOS)'),
          flag(reading, 'txFault', 'failed', 'transmitter fault (TX_FAULT)'),
          judge(reading, await moduleThresholds(driver, options, identity), 'module thresholds'),
        ),
      verify: (identity) => {
        const expect = component.expect;
        const vendor = identity.details?.vendor;
        const partNumber = identity.details?.partNumber;
        if (expect?.vendor !== undefined && vendor !== expect.vendor) {
          throw new HalIdentityError(`SFP vendor is "${String(vendor)}", expected "${expect.vendor}"`, { target: component.id });
        }
        if (expect?.partNumber !== undefined && partNumber !== expect.partNumber) {
          throw new HalIdentityError(`SFP part number is "${String(partNumber)}", expected "${expect.partNumber}"`, { target: component.id });
        }
      },
    },
  );
}

/**
 * The kernel's trip points say what a temperature means (Documentation/driver-api/thermal/sysfs-api.rst):
 * at a `critical` trip the kernel shuts the system down, at `hot` or `passive` it starts cooling by
 * throttling. `active` trips only switch a fan on.
 */
function tripJudgement(temperatureC: number, trips: SocTemperatureDriver['trips']): Judgement {
  const reached = trips.filter((trip) => temperatureC >= trip.temperatureC);
  const critical = reached.find((trip) => trip.type === 'critical');
  if (critical) return { health: 'failed', reasons: [`${temperatureC} C reached the critical trip point (${critical.temperatureC} C)`] };
  const cooling = reached.find((trip) => trip.type === 'hot' || trip.type === 'passive');
  if (cooling) return { health: 'degraded', reasons: [`${temperatureC} C reached the ${cooling.type} trip point (${cooling.temperatureC} C)`] };
  return { health: 'ok', reasons: [] };
}

export const componentDrivers = {
  tmp102: { blinkCode: 1, chip: tmp102, check: (component, context) => chipCheck(component, context, tmp102) },
  lm75: { blinkCode: 1, chip: lm75, check: (component, context) => chipCheck(component, context, lm75) },
  bme280: { blinkCode: 1, chip: bme280, check: (component, context) => chipCheck(component, context, bme280) },
  ina219: {
    blinkCode: 1,
    chip: ina219,
    check: (component, context) =>
      chipCheck(component, context, ina219, {
        assess: (reading) =>
          combine(
            flag(reading, 'overflow', 'failed', 'current past the shunt range (OVF)'),
            flag(reading, 'shuntSaturated', 'failed', 'shunt voltage at the PGA full scale: the current is past what the shunt range measures'),
          ),
      }),
  },
  sfp: { blinkCode: 2, chip: sfp, check: sfpCheck },
  ethernet: {
    blinkCode: 2,
    check: (component, { board }) =>
      new DriverCheck(
        component,
        board,
        async (handles) => {
          const iface = await board.net.open(component.interface);
          const watch = iface.watch?.bind(iface);
          if (watch) {
            handles.events((onEvent) =>
              watch((carrier) => onEvent(`carrier ${carrier ? 'up' : 'down'} on ${component.interface}`, carrier ? undefined : `no carrier on ${component.interface}`)),
            );
          }
          return new EthernetDriver(iface, board.clock, component.ledLine ? await handles.line(component.ledLine) : undefined);
        },
        {
          assess: (reading) =>
            combine(
              reading.carrier === false ? { health: 'failed', reasons: [`no carrier on ${component.interface}`] } : undefined,
              component.minSpeedMbps !== undefined && typeof reading.speedMbps === 'number' && reading.speedMbps < component.minSpeedMbps
                ? { health: 'degraded', reasons: [`link at ${reading.speedMbps} Mb/s, below ${component.minSpeedMbps}`] }
                : undefined,
            ),
        },
      ),
  },
  'serial-peer': {
    blinkCode: 3,
    stateMaxAgeMs: (component) => component.stateMaxAgeMs ?? 2500,
    check: (component, { board }) => {
      const port = board.config.serial?.find((p) => p.id === component.port);
      return new DriverCheck(component, board, async (handles) => {
        if (!port) throw new HalNotFoundError(`board ${board.config.id} has no serial port "${component.port}"`, { target: component.port });
        const opened = handles.hold(await board.serial.open(serialPortSpec(board.config, port)));
        return new SerialPeerDriver(opened, board.clock, { protocol: component.protocol, unitId: component.unitId ?? 1 });
      });
    },
  },
  'gpio-status': { blinkCode: 4, check: (component, { board }) => new GpioStatusCheck(component, board) },
  watchdog: { blinkCode: 5, check: (component, { watchdogHealth }) => new WatchdogCheck(component, watchdogHealth) },
  power: { blinkCode: 6, check: (component, { board }) => new DriverCheck(component, board, async () => new PowerDriver(board.health)) },
  'soc-temperature': {
    blinkCode: 6,
    check: (component, { board }) =>
      new DriverCheck(component, board, async () => new SocTemperatureDriver(board.health, component.zone), {
        assess: (reading, driver) => (typeof reading.temperatureC === 'number' ? tripJudgement(reading.temperatureC, driver.trips) : { health: 'ok', reasons: [] }),
      }),
  },
  storage: {
    blinkCode: 6,
    check: (component, { board }) => new DriverCheck(component, board, async () => new StorageDriver(board.health, component.mountPoint ?? '/', component.device)),
  },
  'clock-sync': {
    blinkCode: 6,
    check: (component, { board }) =>
      new DriverCheck(component, board, async () => new ClockSyncDriver(board.health), {
        // The thresholds judge `synchronized`; when they find it wanting, the source's words say why.
        assess: (reading) =>
          typeof reading.why === 'string' && judge({ synchronized: reading.synchronized ?? 1 }, component.thresholds).health !== 'ok'
            ? { health: 'ok', reasons: [reading.why] }
            : { health: 'ok', reasons: [] },
      }),
  },
  'memory-pressure': { blinkCode: 6, check: (component, { board }) => new DriverCheck(component, board, async () => new MemoryPressureDriver(board.health)) },
} satisfies { [K in ComponentKind]: ComponentKindDriver<K> };

/** The firmware's entry for a component's kind. */
export function componentDriver(component: Readonly<ComponentConfig>): ComponentKindDriver<ComponentKind> {
  return componentDrivers[component.kind] as unknown as ComponentKindDriver<ComponentKind>;
}

export function createComponentCheck(component: Readonly<ComponentConfig>, context: CheckContext): ComponentCheck {
  return componentDriver(component).check(component, context);
}
