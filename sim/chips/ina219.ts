/**
 * An INA219 at register level. The shunt voltage is the model's current through its shunt resistor,
 * clipped at the PGA range; the bus voltage is clipped at the bus range; the current and power
 * registers are computed from them with the calibration, as the datasheet's equations 4 and 5 say.
 * Conversions follow the configured ADC times on the virtual clock: CNVR sets at the end of a cycle
 * and clears on a power-register read or a mode write, and a new calibration only reaches the
 * current and power registers with the first conversion after it was written. RST restores the
 * power-on registers, calibration 0 included.
 */
import {
  INA219_BUS,
  INA219_BUS_LSB_V,
  INA219_CONF,
  INA219_POWER_ON_CONFIG,
  INA219_REG,
  INA219_SHUNT_LSB_V,
  ina219ConversionTimeUs,
  ina219ShuntRangeV,
} from '../../hal/drivers/ina219.js';
import { type ChipContext, Quantity, valueFaultKinds } from './context.js';
import { WordRegisterModel } from './registers.js';

/** An INA226 answering instead: its power-on configuration, with the bit 14 an INA219 never sets. */
const WRONG_IDENTITY_CONFIG = 0x4127;
const DEFAULT_SHUNT_OHMS = 0.1;

export interface Ina219ModelOptions {
  /** The shunt resistor on the simulated board; default `initial.shuntOhms`, else 0.1 ohm. */
  shuntOhms?: number;
}

export class Ina219Model extends WordRegisterModel {
  readonly currentA: Quantity;
  readonly busVoltageV: Quantity;
  readonly shuntOhms: number;
  protected readonly registerCount = 6;
  private config = INA219_POWER_ON_CONFIG;
  private calibration = 0;
  /** The calibration the current and power registers were last computed with, and when the new one was written. */
  private appliedCalibration = 0;
  private calibrationWrittenAt = 0;
  private modeSetAt: number;
  private cnvrClearedAt: number;
  /** Shunt and bus ADC values of the last conversion, held while conversions are stopped. */
  private held = { shunt: 0, bus: 0 };
  /** The mode start whose triggered conversion `held` comes from. */
  private heldFor: number | undefined;

  constructor(
    private readonly ctx: ChipContext,
    options: Ina219ModelOptions = {},
  ) {
    super();
    this.shuntOhms = options.shuntOhms ?? ctx.initial.shuntOhms ?? DEFAULT_SHUNT_OHMS;
    this.currentA = new Quantity(ctx, 'currentA', 0.5, 0.3 / this.shuntOhms);
    this.busVoltageV = new Quantity(ctx, 'busVoltageV', 5, 26);
    ctx.faults.register(ctx.id, valueFaultKinds);
    this.modeSetAt = ctx.clock.now();
    this.cnvrClearedAt = this.modeSetAt;
  }

  private get mode(): number {
    return this.config & INA219_CONF.MODE;
  }

  /** Time for one conversion cycle: the channels the mode converts, at their ADC settings. */
  private cycleMs(): number {
    const shuntUs = this.mode & 0b001 ? ina219ConversionTimeUs((this.config & INA219_CONF.SADC) >> 3) : 0;
    const busUs = this.mode & 0b010 ? ina219ConversionTimeUs((this.config & INA219_CONF.BADC) >> 7) : 0;
    return (shuntUs + busUs) / 1000;
  }

  /** End time of the latest completed conversion, or undefined if none since the mode was set. */
  private lastConversionEnd(now: number): number | undefined {
    const mode = this.mode;
    if (mode === 0 || mode === 4) return undefined;
    const cycle = this.cycleMs();
    const cycles = Math.floor((now - this.modeSetAt) / cycle);
    if (cycles < 1) return undefined;
    // Triggered modes (1-3) convert once; continuous modes (5-7) keep going.
    return this.modeSetAt + (mode < 4 ? 1 : cycles) * cycle;
  }

  private sample(now: number): { shunt: number; bus: number; current: number; power: number; overflow: boolean; cnvr: boolean } {
    const end = this.lastConversionEnd(now);
    if (end !== undefined && (this.mode >= 5 || this.heldFor !== this.modeSetAt)) {
      // Continuous modes are sampled at the read, so a value a test sets shows at once.
      this.heldFor = this.modeSetAt;
      if (this.mode & 0b001) {
        const rangeCounts = Math.round(ina219ShuntRangeV(this.config) / INA219_SHUNT_LSB_V);
        const shunt = Math.round((this.currentA.get() * this.shuntOhms) / INA219_SHUNT_LSB_V);
        this.held.shunt = Math.max(-rangeCounts, Math.min(rangeCounts, shunt));
      }
      if (this.mode & 0b010) {
        const busCounts = (this.config & INA219_CONF.BRNG ? 32 : 16) / INA219_BUS_LSB_V;
        this.held.bus = Math.max(0, Math.min(busCounts, Math.round(this.busVoltageV.get() / INA219_BUS_LSB_V)));
      }
    }
    if (end !== undefined && end >= this.calibrationWrittenAt) this.appliedCalibration = this.calibration;
    const { shunt, bus } = this.held;
    const rawCurrent = Math.trunc((shunt * this.appliedCalibration) / 4096);
    const current = Math.max(-32768, Math.min(32767, rawCurrent));
    const rawPower = Math.trunc((Math.abs(current) * bus) / 5000);
    const power = Math.min(0xffff, rawPower);
    const overflow = current !== rawCurrent || power !== rawPower;
    return { shunt, bus, current, power, overflow, cnvr: end !== undefined && end > this.cnvrClearedAt };
  }

  /** Power-on reset (SBOS448 8.6.2.1, RST): the power-on configuration, calibration 0. */
  private powerOn(now: number): void {
    this.config = INA219_POWER_ON_CONFIG;
    this.calibration = 0;
    this.appliedCalibration = 0;
    this.calibrationWrittenAt = now;
  }

  protected readRegister(register: number): number {
    const now = this.ctx.clock.now();
    // A different chip at the address was put there, so it is fresh out of power-on reset:
    // calibration 0 whichever register is read.
    if (this.ctx.faults.active(this.ctx.id, 'wrong-identity')) this.powerOn(now);
    switch (register) {
      case INA219_REG.config:
        return this.ctx.faults.hit(this.ctx.id, 'wrong-identity') ? WRONG_IDENTITY_CONFIG : this.config;
      case INA219_REG.shunt:
        return this.sample(now).shunt & 0xffff;
      case INA219_REG.bus: {
        const { bus, cnvr, overflow } = this.sample(now);
        return (bus << 3) | (cnvr ? INA219_BUS.CNVR : 0) | (overflow ? INA219_BUS.OVF : 0);
      }
      case INA219_REG.power: {
        const { power } = this.sample(now);
        this.cnvrClearedAt = now;
        return power;
      }
      case INA219_REG.current:
        return this.sample(now).current & 0xffff;
      default:
        return this.calibration;
    }
  }

  protected writeRegister(register: number, value: number): void {
    const now = this.ctx.clock.now();
    if (register === INA219_REG.config) {
      if (value & INA219_CONF.RST) {
        this.powerOn(now);
      } else {
        this.config = value & ~(INA219_CONF.RST | INA219_CONF.UNUSED) & 0xffff;
      }
      this.modeSetAt = now;
      if (this.mode !== 0 && this.mode !== 4) this.cnvrClearedAt = now;
    } else if (register === INA219_REG.calibration) {
      this.calibration = value & 0xfffe;
      this.calibrationWrittenAt = now;
    }
  }
}
