/**
 * TI INA219 current/power monitor (SBOS448). Six 16-bit registers sent most significant byte first:
 * configuration (00h, power-on 399Fh), shunt voltage (01h, 10 uV/LSB, signed), bus voltage (02h,
 * bits 15-3 at 4 mV/LSB, CNVR, OVF), power (03h), current (04h) and calibration (05h).
 *
 * Current and power registers read 0 until the calibration register is programmed, and a chip reset
 * (RST, brown-out) clears it. Every read therefore checks the calibration register first; when it
 * has been lost the driver writes configuration and calibration again and waits for a conversion
 * made with them (CNVR) before trusting the current and power registers.
 *
 * The calibration register is also the proof that the chip is the one this driver configured: it is
 * 0000h after power-on (SBOS448 8.6.3.6) and a chip put in its place was powered on, so a diagnosis
 * (`diagnose`) reads the configuration (the identity) only when the calibration is not what was
 * written. Current and power are not read: the chip computes them from the shunt and bus registers
 * and the calibration (8.5.1, equations 4 and 5), and so does the driver, with the same truncation.
 * 15 bytes on the wire per steady diagnosis instead of 30.
 */
import type { Clock } from '../clock.js';
import { HalClosedError, HalIdentityError, HalInvalidArgumentError, HalIoError } from '../errors.js';
import { type I2cBus, i2cTarget } from '../i2c.js';
import { type Driver, type DriverCallOptions, type Identity } from './driver.js';

export const INA219_REG = { config: 0x00, shunt: 0x01, bus: 0x02, power: 0x03, current: 0x04, calibration: 0x05 } as const;
export const INA219_CONF = { RST: 0x8000, UNUSED: 0x4000, BRNG: 0x2000, PG: 0x1800, BADC: 0x0780, SADC: 0x0078, MODE: 0x0007 } as const;
export const INA219_BUS = { CNVR: 0x0002, OVF: 0x0001 } as const;
export const INA219_POWER_ON_CONFIG = 0x399f;
export const INA219_MODE_SHUNT_BUS_CONTINUOUS = 0b111;
export const INA219_SHUNT_LSB_V = 10e-6;
export const INA219_BUS_LSB_V = 0.004;

/** Conversion time in microseconds for a BADC/SADC code (datasheet table 5). */
export function ina219ConversionTimeUs(code: number): number {
  return code & 0b1000 ? [532, 1060, 2130, 4260, 8510, 17020, 34050, 68100][code & 0b111]! : [84, 148, 276, 532][code & 0b11]!;
}

/** Time for one shunt-and-bus conversion cycle under `config`, in ms. */
export function ina219CycleMs(config: number): number {
  const badc = (config & INA219_CONF.BADC) >> 7;
  const sadc = (config & INA219_CONF.SADC) >> 3;
  return (ina219ConversionTimeUs(badc) + ina219ConversionTimeUs(sadc)) / 1000;
}

/** Shunt full-scale voltage set by the PGA bits: 40, 80, 160 or 320 mV. */
export function ina219ShuntRangeV(config: number): number {
  return 0.04 * 2 ** ((config & INA219_CONF.PG) >> 11);
}

export interface Ina219Scaling {
  currentLsbA: number;
  powerLsbW: number;
  /** The value the calibration register holds; its bit 0 is void and reads 0. */
  calibration: number;
}

/** Calibration per datasheet 8.5.1: Current_LSB = maxCurrentA / 2^15, Cal = trunc(0.04096 / (Current_LSB * Rshunt)). */
export function ina219Scaling(shuntOhms: number, maxCurrentA: number): Ina219Scaling {
  const currentLsbA = maxCurrentA / 32768;
  // The nudge keeps a quotient that is an integer on paper (20480 in the datasheet example) from
  // truncating to one less after binary rounding.
  const calibration = Math.trunc(0.04096 / (currentLsbA * shuntOhms) + 1e-9);
  return { currentLsbA, powerLsbW: 20 * currentLsbA, calibration: calibration & 0xfffe };
}

/** The current register the chip computes, SBOS448 8.5.1 equation 4: shunt x calibration / 4096, truncated, 16-bit signed. */
export function ina219CurrentRegister(shunt: number, calibration: number): number {
  return Math.max(-32768, Math.min(32767, Math.trunc((shunt * calibration) / 4096)));
}

/** The power register, equation 5: current x bus voltage (in 4 mV counts) / 5000, truncated, 16-bit unsigned. */
export function ina219PowerRegister(current: number, busCounts: number): number {
  return Math.min(0xffff, Math.trunc((Math.abs(current) * busCounts) / 5000));
}

export interface Ina219Options {
  /** Shunt resistor in ohms. */
  shuntOhms: number;
  /** Largest current expected; sets the calibration. */
  maxCurrentA: number;
  /** Configuration to program; default the power-on 399Fh (32 V, /8 = 320 mV, 12-bit, shunt and bus continuous). */
  config?: number;
}

export type Ina219Reading = {
  busVoltageV: number;
  shuntVoltageV: number;
  currentA: number;
  powerW: number;
  overflow: boolean;
  /** The shunt voltage is at the PGA's full scale (SBOS448 table 7: 32000 counts at /8): the current is past what it measures, however high. */
  shuntSaturated: boolean;
};

function toInt16(word: number): number {
  return (word << 16) >> 16;
}

function hex16(value: number): string {
  return `0x${value.toString(16).padStart(4, '0')}`;
}

/** Conversion cycles to wait for CNVR after reprogramming before giving up. */
const CNVR_POLLS = 3;

export class Ina219Driver implements Driver<Ina219Reading> {
  readonly target: string;
  readonly scaling: Ina219Scaling;
  private readonly config: number;
  /** The identity `identify` proved last, until the calibration register shows the chip was reset. */
  private proven: Identity | undefined;

  constructor(
    private readonly bus: I2cBus,
    private readonly address: number,
    options: Ina219Options,
    private readonly clock: Clock,
  ) {
    this.target = i2cTarget(bus.id, address);
    const { shuntOhms, maxCurrentA, config = INA219_POWER_ON_CONFIG } = options;
    const invalid = (message: string): HalInvalidArgumentError => new HalInvalidArgumentError(`${this.target}: ${message}`, { target: this.target });
    if (!(Number.isFinite(shuntOhms) && shuntOhms > 0)) throw invalid(`shuntOhms must be a positive number, got ${String(shuntOhms)}`);
    if (!(Number.isFinite(maxCurrentA) && maxCurrentA > 0)) throw invalid(`maxCurrentA must be a positive number, got ${String(maxCurrentA)}`);
    if (!Number.isInteger(config) || config < 0 || config > 0xffff || config & (INA219_CONF.RST | INA219_CONF.UNUSED)) {
      throw invalid(`config must be a 16-bit value with bits 15 and 14 clear, got ${String(config)}`);
    }
    if ((config & INA219_CONF.MODE) !== INA219_MODE_SHUNT_BUS_CONTINUOUS) {
      throw invalid(`config ${hex16(config)} must select shunt and bus continuous mode (MODE = 111)`);
    }
    this.config = config;
    this.scaling = ina219Scaling(shuntOhms, maxCurrentA);
    const exact = 0.04096 / (this.scaling.currentLsbA * shuntOhms);
    if (exact < 2 || exact > 0xffff) {
      throw invalid(
        `shuntOhms ${shuntOhms} x maxCurrentA ${maxCurrentA} = ${(shuntOhms * maxCurrentA * 1000).toFixed(3)} mV gives calibration ${Math.trunc(exact)}, outside 2-65535 (the product must exceed 20.48 mV)`,
      );
    }
  }

  private word(register: number, options: DriverCallOptions): Promise<number> {
    return this.bus.readWord(this.address, register, 'be', options);
  }

  private configProblem(config: number): string | undefined {
    if (config & INA219_CONF.UNUSED) return 'bit 14 set, which an INA219 never reads';
    if (config & INA219_CONF.RST) return 'reset bit still set';
    if (config !== INA219_POWER_ON_CONFIG && config !== this.config) {
      return `neither the power-on ${hex16(INA219_POWER_ON_CONFIG)} nor the programmed ${hex16(this.config)}`;
    }
    return undefined;
  }

  async identify(options: DriverCallOptions = {}): Promise<Identity> {
    const config = await this.word(INA219_REG.config, options);
    const problem = this.configProblem(config);
    if (problem) {
      throw new HalIdentityError(`${this.target}: expected an INA219, found configuration ${hex16(config)} (${problem})`, { target: this.target });
    }
    this.proven = { part: 'INA219', details: { config: hex16(config) } };
    return this.proven;
  }

  async diagnose(options: DriverCallOptions = {}): Promise<{ identity: Identity; reading: Ina219Reading }> {
    const calibrated = (await this.word(INA219_REG.calibration, options)) === this.scaling.calibration;
    let identity = calibrated ? this.proven : undefined;
    if (!identity) {
      identity = await this.identify(options);
      if (!calibrated) await this.program(options);
    }
    return { identity, reading: await this.measurements(options) };
  }

  /** Programs configuration and calibration if the chip lost them; true when it had to. */
  private async ensureCalibrated(options: DriverCallOptions): Promise<boolean> {
    const calibration = await this.word(INA219_REG.calibration, options);
    if (calibration === this.scaling.calibration) return false;
    this.proven = undefined;
    await this.program(options);
    return true;
  }

  /** Writes configuration and calibration, then waits for a conversion made with them. */
  private async program(options: DriverCallOptions): Promise<void> {
    await this.bus.writeWord(this.address, INA219_REG.config, this.config, 'be', options);
    await this.bus.writeWord(this.address, INA219_REG.calibration, this.scaling.calibration, 'be', options);
    if (!(await this.awaitConversion(options))) {
      throw new HalIoError(`${this.target}: no conversion completed within ${CNVR_POLLS} cycles after recalibration`, { target: this.target });
    }
  }

  /** Clears CNVR by reading the power register, then waits up to CNVR_POLLS cycles for it to set. */
  private async awaitConversion(options: DriverCallOptions): Promise<boolean> {
    await this.word(INA219_REG.power, options);
    const cycleMs = Math.ceil(ina219CycleMs(this.config));
    for (let poll = 0; poll < CNVR_POLLS; poll++) {
      await this.sleep(cycleMs, options);
      if ((await this.word(INA219_REG.bus, options)) & INA219_BUS.CNVR) return true;
    }
    return false;
  }

  async read(options: DriverCallOptions = {}): Promise<Ina219Reading> {
    await this.ensureCalibrated(options);
    return this.measurements(options);
  }

  /** Shunt and bus registers, with current and power as the calibrated chip computes them. */
  private async measurements(options: DriverCallOptions): Promise<Ina219Reading> {
    const shunt = toInt16(await this.word(INA219_REG.shunt, options));
    const bus = await this.word(INA219_REG.bus, options);
    const current = ina219CurrentRegister(shunt, this.scaling.calibration);
    return {
      busVoltageV: (bus >> 3) * INA219_BUS_LSB_V,
      shuntVoltageV: shunt * INA219_SHUNT_LSB_V,
      currentA: current * this.scaling.currentLsbA,
      powerW: ina219PowerRegister(current, bus >> 3) * this.scaling.powerLsbW,
      overflow: (bus & INA219_BUS.OVF) !== 0,
      shuntSaturated: Math.abs(shunt) * INA219_SHUNT_LSB_V >= ina219ShuntRangeV(this.config),
    };
  }

  private async sleep(ms: number, { signal }: DriverCallOptions): Promise<void> {
    try {
      await this.clock.sleep(ms, signal);
    } catch (err) {
      throw new HalClosedError(`${this.target}: conversion wait canceled`, { target: this.target, canceled: true, cause: err });
    }
  }
}
