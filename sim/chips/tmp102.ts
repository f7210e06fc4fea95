/**
 * A TMP102 at register level: temperature, configuration, TLOW and THIGH as the datasheet (SBOS397)
 * describes them, including the extended-mode format, shutdown with one-shot conversions and the
 * comparator-mode AL bit. Conversions in continuous mode are taken at the moment of the read, so a
 * value set by a test or scenario shows on the next read instead of up to a conversion period later.
 */
import { TMP102_CONF, TMP102_LSB_C, TMP102_POWER_ON_CONFIG, TMP102_REG, tmp102LimitToC } from '../../hal/drivers/tmp102.js';
import { type ChipContext, Quantity, valueFaultKinds } from './context.js';
import { WordRegisterModel } from './registers.js';

const WRITABLE =
  TMP102_CONF.OS |
  TMP102_CONF.F1 |
  TMP102_CONF.F0 |
  TMP102_CONF.POL |
  TMP102_CONF.TM |
  TMP102_CONF.SD |
  TMP102_CONF.CR1 |
  TMP102_CONF.CR0 |
  TMP102_CONF.EM;

/** One-shot conversion time, typical (datasheet 7.5). */
const ONE_SHOT_MS = 26;

/** TMP75-style configuration: an 8-bit register with the resolution bits at their power-on 00. */
const WRONG_IDENTITY_CONFIG = 0x0000;

export class Tmp102Model extends WordRegisterModel {
  readonly temperatureC: Quantity;
  protected readonly registerCount = 4;
  private config = TMP102_POWER_ON_CONFIG & WRITABLE;
  private tlow = 0x4b00;
  private thigh = 0x5000;
  /** Comparator output, true while active (temperature reached THIGH and has not fallen below TLOW). */
  private alert = false;
  /** The temperature the register holds while shut down. */
  private frozenC: number | undefined;
  private oneShotDoneAt: number | undefined;
  private oneShotDone = false;

  constructor(private readonly ctx: ChipContext) {
    super();
    this.temperatureC = new Quantity(ctx, 'temperatureC', 25, 150);
    ctx.faults.register(ctx.id, valueFaultKinds);
  }

  private get extended(): boolean {
    return (this.config & TMP102_CONF.EM) !== 0;
  }

  private get shutdown(): boolean {
    return (this.config & TMP102_CONF.SD) !== 0;
  }

  /** The temperature of the latest conversion, updating the comparator as the chip does after each. */
  private convert(): number {
    if (this.shutdown) {
      if (this.oneShotDoneAt !== undefined && this.ctx.clock.now() >= this.oneShotDoneAt) {
        this.frozenC = this.temperatureC.get();
        this.oneShotDoneAt = undefined;
        this.oneShotDone = true;
      }
    }
    const celsius = this.shutdown && this.frozenC !== undefined ? this.frozenC : this.temperatureC.get();
    if (celsius >= tmp102LimitToC(this.thigh, this.extended)) this.alert = true;
    else if (celsius < tmp102LimitToC(this.tlow, this.extended)) this.alert = false;
    return celsius;
  }

  private encode(celsius: number): number {
    const bits = this.extended ? 13 : 12;
    const max = 2 ** (bits - 1) - 1;
    const counts = Math.max(-max - 1, Math.min(max, Math.round(celsius / TMP102_LSB_C)));
    return ((counts << (16 - bits)) & 0xffff) | (this.extended ? 1 : 0);
  }

  protected readRegister(register: number): number {
    switch (register) {
      case TMP102_REG.temperature:
        return this.encode(this.convert());
      case TMP102_REG.config: {
        if (this.ctx.faults.hit(this.ctx.id, 'wrong-identity')) return WRONG_IDENTITY_CONFIG;
        this.convert();
        const activeLow = (this.config & TMP102_CONF.POL) === 0;
        const al = this.alert !== activeLow ? TMP102_CONF.AL : 0;
        const converting = this.oneShotDoneAt !== undefined;
        const os = this.shutdown && this.oneShotDone && !converting ? TMP102_CONF.OS : 0;
        return (this.config & ~TMP102_CONF.OS) | TMP102_CONF.R1 | TMP102_CONF.R0 | al | os;
      }
      case TMP102_REG.tlow:
        return this.tlow;
      default:
        return this.thigh;
    }
  }

  protected writeRegister(register: number, value: number): void {
    const limitMask = this.extended ? 0xfff8 : 0xfff0;
    switch (register) {
      case TMP102_REG.config: {
        const wasShutdown = this.shutdown;
        this.config = value & WRITABLE & ~TMP102_CONF.OS;
        if (this.shutdown && !wasShutdown) {
          this.frozenC = this.temperatureC.get();
          this.oneShotDone = false;
        }
        if (!this.shutdown) {
          this.frozenC = undefined;
          this.oneShotDoneAt = undefined;
          this.oneShotDone = false;
        } else if (value & TMP102_CONF.OS) {
          this.oneShotDoneAt = this.ctx.clock.now() + ONE_SHOT_MS;
          this.oneShotDone = false;
        }
        return;
      }
      case TMP102_REG.tlow:
        this.tlow = value & limitMask;
        return;
      case TMP102_REG.thigh:
        this.thigh = value & limitMask;
        return;
      default:
    }
  }
}
