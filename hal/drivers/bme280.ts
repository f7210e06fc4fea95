/**
 * Bosch BME280 humidity, pressure and temperature sensor (BST-BME280-DS002), over I2C.
 *
 * By default the chip runs in normal mode (datasheet 3.3.4): it measures by itself, one measurement
 * every t_measure + t_standby, and a read only fetches the latest results. The appliance diagnoses
 * its components on every accepted connection, so a read must not wait for a conversion. The driver
 * configures the chip the first time a read finds it not running as configured, which is also how
 * it recovers after a power glitch or soft reset puts the chip back in sleep mode; only that read
 * waits one measurement time. Option `mode: 'forced'` keeps the one-shot behaviour: every read
 * starts a measurement and waits for it.
 *
 * A diagnosis (`diagnose`) proves the chip id and reads the trimming parameters once per power
 * cycle: afterwards the normal-mode burst, which reads ctrl_meas and config anyway, is the proof.
 * Both reset to 0x00 on power-on or soft reset (datasheet 5.3, table 18 "reset state"; 3.3.1: sleep
 * mode after power-on), and a chip put in place of this one was powered on, so a burst that still
 * shows this driver's settings comes from the chip it configured. A burst that does not makes the
 * driver prove the chip id and read the trimming parameters again before configuring it. 14 bytes
 * on the wire per steady diagnosis instead of 57.
 *
 * Both modes use x1 oversampling on every channel with the IIR filter off (the datasheet's
 * "weather monitoring" setting, 3.5.1), burst-read the data so the three values belong to the same
 * measurement, and apply the datasheet's double-precision compensation formulas (8.1) with the
 * trimming parameters read from NVM.
 */
import type { Clock } from '../clock.js';
import { HalClosedError, HalIdentityError, HalInvalidArgumentError, HalIoError } from '../errors.js';
import { type I2cBus, i2cTarget } from '../i2c.js';
import { type Driver, type DriverCallOptions, type Identity } from './driver.js';

export const BME280_REG = {
  calibA: 0x88,
  id: 0xd0,
  reset: 0xe0,
  calibB: 0xe1,
  ctrlHum: 0xf2,
  status: 0xf3,
  ctrlMeas: 0xf4,
  config: 0xf5,
  data: 0xf7,
} as const;
/** Bytes in the two calibration blocks: 88h-A1h and E1h-E7h. */
export const BME280_CALIB_A_LENGTH = 26;
export const BME280_CALIB_B_LENGTH = 7;
export const BME280_CHIP_ID = 0x60;
export const BMP280_CHIP_ID = 0x58;
export const BME280_RESET_WORD = 0xb6;
export const BME280_STATUS = { MEASURING: 0x08, IM_UPDATE: 0x01 } as const;
export const BME280_MODE = { SLEEP: 0b00, FORCED: 0b01, NORMAL: 0b11 } as const;
/** t_standby in ms by the config register's t_sb code (datasheet table 27). */
export const BME280_STANDBY_MS = [0.5, 62.5, 125, 250, 500, 1000, 10, 20] as const;
/** Raw value of a channel whose measurement was skipped (oversampling 0), and after reset. */
export const BME280_SKIPPED_20BIT = 0x80000;
export const BME280_SKIPPED_16BIT = 0x8000;

/** Oversampling factor for an osrs_x register code: 0 skips the channel, 5-7 all mean x16. */
export function bme280Oversampling(code: number): number {
  return code === 0 ? 0 : 2 ** Math.min(code - 1, 4);
}

/**
 * Measurement time in ms for the given oversampling codes, datasheet 9.1: `typical` is what the chip
 * takes, `max` what a driver must wait.
 */
export function bme280MeasurementTimeMs(osrsT: number, osrsP: number, osrsH: number, which: 'typical' | 'max'): number {
  const [base, perSample, channelOverhead] = which === 'max' ? [1.25, 2.3, 0.575] : [1, 2, 0.5];
  const [t, p, h] = [osrsT, osrsP, osrsH].map(bme280Oversampling) as [number, number, number];
  return base + (t ? perSample * t : 0) + (p ? perSample * p + channelOverhead : 0) + (h ? perSample * h + channelOverhead : 0);
}

/** Trimming parameters, named as in the datasheet (dig_T1 ... dig_H6). */
export interface Bme280Calibration {
  T1: number;
  T2: number;
  T3: number;
  P1: number;
  P2: number;
  P3: number;
  P4: number;
  P5: number;
  P6: number;
  P7: number;
  P8: number;
  P9: number;
  H1: number;
  H2: number;
  H3: number;
  H4: number;
  H5: number;
  H6: number;
}

/** Parses the 88h-A1h and E1h-E7h blocks (datasheet table 16). */
export function parseBme280Calibration(a: Buffer, b: Buffer): Bme280Calibration {
  const e5 = b.readUInt8(4);
  return {
    T1: a.readUInt16LE(0),
    T2: a.readInt16LE(2),
    T3: a.readInt16LE(4),
    P1: a.readUInt16LE(6),
    P2: a.readInt16LE(8),
    P3: a.readInt16LE(10),
    P4: a.readInt16LE(12),
    P5: a.readInt16LE(14),
    P6: a.readInt16LE(16),
    P7: a.readInt16LE(18),
    P8: a.readInt16LE(20),
    P9: a.readInt16LE(22),
    H1: a.readUInt8(25),
    H2: b.readInt16LE(0),
    H3: b.readUInt8(2),
    // dig_H4 and dig_H5 are signed 12-bit values sharing the nibbles of E5h.
    H4: b.readInt8(3) * 16 + (e5 & 0x0f),
    H5: b.readInt8(5) * 16 + (e5 >> 4),
    H6: b.readInt8(6),
  };
}

/** Temperature in C and t_fine, which pressure and humidity compensation take (datasheet 8.1). */
export function bme280CompensateTemperature(cal: Bme280Calibration, adcT: number): { temperatureC: number; tFine: number } {
  const var1 = (adcT / 16384 - cal.T1 / 1024) * cal.T2;
  const d = adcT / 131072 - cal.T1 / 8192;
  const var2 = d * d * cal.T3;
  return { temperatureC: (var1 + var2) / 5120, tFine: Math.trunc(var1 + var2) };
}

/** Pressure in Pa (datasheet 8.1). */
export function bme280CompensatePressure(cal: Bme280Calibration, adcP: number, tFine: number): number {
  let var1 = tFine / 2 - 64000;
  let var2 = (var1 * var1 * cal.P6) / 32768;
  var2 = var2 + var1 * cal.P5 * 2;
  var2 = var2 / 4 + cal.P4 * 65536;
  var1 = ((cal.P3 * var1 * var1) / 524288 + cal.P2 * var1) / 524288;
  var1 = (1 + var1 / 32768) * cal.P1;
  if (var1 === 0) return 0;
  let p = 1048576 - adcP;
  p = ((p - var2 / 4096) * 6250) / var1;
  var1 = (cal.P9 * p * p) / 2147483648;
  var2 = (p * cal.P8) / 32768;
  return p + (var1 + var2 + cal.P7) / 16;
}

/** Relative humidity in %, clamped to 0-100 as the datasheet does (8.1). */
export function bme280CompensateHumidity(cal: Bme280Calibration, adcH: number, tFine: number): number {
  let h = tFine - 76800;
  h = (adcH - (cal.H4 * 64 + (cal.H5 / 16384) * h)) * ((cal.H2 / 65536) * (1 + (cal.H6 / 67108864) * h * (1 + (cal.H3 / 67108864) * h)));
  h = h * (1 - (cal.H1 * h) / 524288);
  return Math.min(100, Math.max(0, h));
}

export type Bme280Reading = { temperatureC: number; pressurePa: number; humidityPct: number };

/** Raw ADC values from the F7h-FEh burst. */
export function parseBme280Data(data: Buffer): { adcP: number; adcT: number; adcH: number } {
  const u20 = (offset: number): number => (data[offset]! << 12) | (data[offset + 1]! << 4) | (data[offset + 2]! >> 4);
  return { adcP: u20(0), adcT: u20(3), adcH: (data[6]! << 8) | data[7]! };
}

/** x1 oversampling for every channel. */
const OSRS_X1 = 0b001;
const CTRL_MEAS_FORCED_X1 = (OSRS_X1 << 5) | (OSRS_X1 << 2) | BME280_MODE.FORCED;
const CTRL_MEAS_NORMAL_X1 = (OSRS_X1 << 5) | (OSRS_X1 << 2) | BME280_MODE.NORMAL;
/**
 * t_sb 001, 62.5 ms between measurements: a reading is at most one period (~71 ms at x1) old,
 * nothing for enclosure air, whose temperature, pressure and humidity change over seconds. The
 * 0.5 ms standby would keep the chip converting ~94 % of the time instead of ~11 %, eight times the
 * average supply current, and that dissipation warms the die the sensors sit on: self-heating shows
 * in the temperature and humidity it reports.
 */
const T_SB_62_5_MS = 0b001;
const CONFIG_NORMAL = T_SB_62_5_MS << 5;
/** Bit 1 of config is reserved; what it reads back is not ours to compare. */
const CONFIG_MASK = 0xfd;
/**
 * Normal-mode reads fetch ctrl_meas (F4h) through the last data register (FEh) in one burst: the
 * mode check and the data it vouches for come from the same transfer, and the burst covers F7h-FEh
 * whole, which is what the chip's data shadowing needs.
 */
const NORMAL_BURST_LENGTH = BME280_REG.data + 8 - BME280_REG.ctrlMeas;
const NORMAL_DATA_OFFSET = BME280_REG.data - BME280_REG.ctrlMeas;
const MEASUREMENT_WAIT_MS = Math.ceil(bme280MeasurementTimeMs(OSRS_X1, OSRS_X1, OSRS_X1, 'max'));
/** Status polls, 1 ms apart, after the maximum measurement time has passed. */
const STATUS_POLLS = 5;

export type Bme280Mode = 'normal' | 'forced';

export interface Bme280Options {
  /** `normal` (default): the chip measures continuously and reads never wait. `forced`: each read measures once and waits. */
  mode?: Bme280Mode;
}

type Outcome<T> = { value: T } | { problem: string };

function hex8(value: number): string {
  return `0x${value.toString(16).padStart(2, '0')}`;
}

/** Whether a burst from ctrl_meas shows the chip in normal mode with this driver's settings. */
function runsNormal(burst: Buffer): boolean {
  return burst[0] === CTRL_MEAS_NORMAL_X1 && (burst[1]! & CONFIG_MASK) === CONFIG_NORMAL;
}

export class Bme280Driver implements Driver<Bme280Reading> {
  readonly target: string;
  readonly mode: Bme280Mode;
  private calibration: Bme280Calibration | undefined;
  /** The identity `identify` proved last, until a burst shows the chip lost its settings. */
  private proven: Identity | undefined;

  constructor(
    private readonly bus: I2cBus,
    private readonly address: number,
    private readonly clock: Clock,
    options: Bme280Options = {},
  ) {
    this.target = i2cTarget(bus.id, address);
    const { mode = 'normal' } = options;
    if (mode !== 'normal' && mode !== 'forced') {
      throw new HalInvalidArgumentError(`${this.target}: mode must be 'normal' or 'forced', got ${String(mode)}`, { target: this.target });
    }
    this.mode = mode;
  }

  async identify(options: DriverCallOptions = {}): Promise<Identity> {
    const id = await this.bus.readByte(this.address, BME280_REG.id, options);
    if (id !== BME280_CHIP_ID) {
      const found = id === BMP280_CHIP_ID ? `${hex8(id)} (a BMP280, which has no humidity sensor)` : hex8(id);
      throw new HalIdentityError(`${this.target}: expected a BME280 (chip id ${hex8(BME280_CHIP_ID)} at 0xd0), found chip id ${found}`, {
        target: this.target,
      });
    }
    const cal = await this.loadCalibration(options);
    this.proven = { part: 'BME280', details: { chipId: hex8(id), digT1: cal.T1, digP1: cal.P1, digH1: cal.H1 } };
    return this.proven;
  }

  async diagnose(options: DriverCallOptions = {}): Promise<{ identity: Identity; reading: Bme280Reading }> {
    // A forced-mode chip is back in sleep mode after every measurement: its registers show no reset.
    if (this.mode === 'forced') return { identity: await this.identify(options), reading: await this.read(options) };
    const proven = this.proven;
    let identity = proven ?? (await this.identify(options));
    const outcome = await this.measure(options, async () => {
      // Proven before this burst: prove it again. Proven just now: that stands.
      if (proven) identity = await this.identify(options);
      else this.proven = identity;
    });
    if ('problem' in outcome) throw new HalIoError(`${this.target}: ${outcome.problem}`, { target: this.target });
    return { identity, reading: outcome.value };
  }

  async read(options: DriverCallOptions = {}): Promise<Bme280Reading> {
    const outcome = await this.measure(options);
    if ('problem' in outcome) throw new HalIoError(`${this.target}: ${outcome.problem}`, { target: this.target });
    return outcome.value;
  }

  private async loadCalibration(options: DriverCallOptions): Promise<Bme280Calibration> {
    const a = await this.bus.readBlock(this.address, BME280_REG.calibA, BME280_CALIB_A_LENGTH, options);
    const b = await this.bus.readBlock(this.address, BME280_REG.calibB, BME280_CALIB_B_LENGTH, options);
    this.calibration = parseBme280Calibration(a, b);
    return this.calibration;
  }

  /**
   * The latest measurement; a chip that misbehaves (as opposed to a failed transfer) yields `problem`.
   * `onReset` runs when a normal-mode chip is found not running as configured, before it is configured.
   */
  private async measure(options: DriverCallOptions, onReset?: () => Promise<void>): Promise<Outcome<Bme280Reading>> {
    const raw = this.mode === 'normal' ? await this.normalData(options, onReset) : await this.forcedData(options);
    if ('problem' in raw) return raw;
    const cal = this.calibration ?? (await this.loadCalibration(options));
    const { adcT, adcP, adcH } = parseBme280Data(raw.value);
    if (adcT === BME280_SKIPPED_20BIT || adcP === BME280_SKIPPED_20BIT || adcH === BME280_SKIPPED_16BIT) {
      return { problem: `measurement returned the skipped/reset pattern (adc_T 0x${adcT.toString(16)}, adc_P 0x${adcP.toString(16)}, adc_H 0x${adcH.toString(16)})` };
    }
    const { temperatureC, tFine } = bme280CompensateTemperature(cal, adcT);
    return {
      value: {
        temperatureC,
        pressurePa: bme280CompensatePressure(cal, adcP, tFine),
        humidityPct: bme280CompensateHumidity(cal, adcH, tFine),
      },
    };
  }

  /**
   * The F7h-FEh data of a chip in normal mode. A chip found not running as configured (first use,
   * or back in sleep mode after a reset) is configured and given one measurement time; every other
   * read is the one burst.
   */
  private async normalData(options: DriverCallOptions, onReset?: () => Promise<void>): Promise<Outcome<Buffer>> {
    const first = await this.bus.readBlock(this.address, BME280_REG.ctrlMeas, NORMAL_BURST_LENGTH, options);
    if (runsNormal(first)) return { value: first.subarray(NORMAL_DATA_OFFSET) };
    this.proven = undefined;
    await onReset?.();
    const ctrlMeas = first[0]!;
    // Writes to config may be ignored outside sleep mode (datasheet 5.4.6), so stop the chip first.
    if ((ctrlMeas & 0x03) !== BME280_MODE.SLEEP) {
      await this.bus.writeByte(this.address, BME280_REG.ctrlMeas, ctrlMeas & ~0x03, options);
    }
    // ctrl_hum takes effect on the next ctrl_meas write (5.4.3); config must be in place before
    // ctrl_meas starts the measurement cycle.
    await this.bus.writeByte(this.address, BME280_REG.ctrlHum, OSRS_X1, options);
    await this.bus.writeByte(this.address, BME280_REG.config, CONFIG_NORMAL, options);
    await this.bus.writeByte(this.address, BME280_REG.ctrlMeas, CTRL_MEAS_NORMAL_X1, options);
    await this.sleep(MEASUREMENT_WAIT_MS, options);
    const after = await this.bus.readBlock(this.address, BME280_REG.ctrlMeas, NORMAL_BURST_LENGTH, options);
    if (!runsNormal(after)) {
      return {
        problem: `did not enter normal mode: ctrl_meas ${hex8(after[0]!)}, config ${hex8(after[1]!)} after writing ${hex8(CTRL_MEAS_NORMAL_X1)}, ${hex8(CONFIG_NORMAL)}`,
      };
    }
    return { value: after.subarray(NORMAL_DATA_OFFSET) };
  }

  /** One forced measurement: start it, wait the datasheet maximum (9.1), confirm it ended, read F7h-FEh. */
  private async forcedData(options: DriverCallOptions): Promise<Outcome<Buffer>> {
    await this.bus.writeByte(this.address, BME280_REG.ctrlHum, OSRS_X1, options);
    await this.bus.writeByte(this.address, BME280_REG.ctrlMeas, CTRL_MEAS_FORCED_X1, options);
    await this.sleep(MEASUREMENT_WAIT_MS, options);
    for (let poll = 0; ; poll++) {
      const status = await this.bus.readByte(this.address, BME280_REG.status, options);
      if ((status & BME280_STATUS.MEASURING) === 0) break;
      if (poll >= STATUS_POLLS) return { problem: `still measuring (status ${hex8(status)}) ${STATUS_POLLS} ms past the datasheet maximum` };
      await this.sleep(1, options);
    }
    return { value: await this.bus.readBlock(this.address, BME280_REG.data, 8, options) };
  }

  private async sleep(ms: number, { signal }: DriverCallOptions): Promise<void> {
    try {
      await this.clock.sleep(ms, signal);
    } catch (err) {
      throw new HalClosedError(`${this.target}: measurement wait canceled`, { target: this.target, canceled: true, cause: err });
    }
  }
}
