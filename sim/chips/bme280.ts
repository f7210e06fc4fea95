/**
 * A BME280 at register level: chip id, NVM trimming parameters, ctrl_hum / ctrl_meas / config,
 * status, the F7h-FEh data block and soft reset. Measurements run on the virtual clock for the
 * datasheet's typical measurement time (9.1), holding the measuring bit, and latch their results
 * when they end. A forced measurement then returns the chip to sleep mode; in normal mode the chip
 * starts a measurement when it enters the mode and another every t_measure + t_standby after, so
 * the data registers change once per period, however often they are read (3.3.4, 9.2). As on the
 * chip, ctrl_hum takes effect on the next ctrl_meas write, config writes are ignored in normal mode,
 * and power-on or soft reset means sleep mode with the data registers at the skipped pattern. The raw
 * ADC values are found by inverting the datasheet's compensation formulas, so a driver that
 * compensates correctly reads back the model's quantities. They are sampled when the bus first
 * touches the chip after a measurement ended, not at its end: a drift or a fault shows up at most
 * one period early, which no reader can tell from a slightly later measurement. The IIR filter is
 * not modelled.
 */
import {
  BME280_CALIB_A_LENGTH,
  BME280_CALIB_B_LENGTH,
  BME280_CHIP_ID,
  BME280_MODE,
  BME280_REG,
  BME280_RESET_WORD,
  BME280_SKIPPED_16BIT,
  BME280_SKIPPED_20BIT,
  BME280_STANDBY_MS,
  BME280_STATUS,
  BMP280_CHIP_ID,
  type Bme280Calibration,
  bme280CompensateHumidity,
  bme280CompensatePressure,
  bme280CompensateTemperature,
  bme280MeasurementTimeMs,
} from '../../hal/drivers/bme280.js';
import { type ChipContext, Quantity, valueFaultKinds } from './context.js';
import { ByteRegisterModel } from './registers.js';

/**
 * Temperature and pressure trimming from the datasheet's worked example (BMP280 DS001 3.12, the same
 * formulas as the BME280); humidity trimming as read from a production BME280.
 */
export const BME280_EXAMPLE_CALIBRATION: Readonly<Bme280Calibration> = Object.freeze({
  T1: 27504,
  T2: 26435,
  T3: -1000,
  P1: 36477,
  P2: -10685,
  P3: 3024,
  P4: 2855,
  P5: 140,
  P6: -7,
  P7: 15500,
  P8: -14600,
  P9: 6000,
  H1: 75,
  H2: 362,
  H3: 0,
  H4: 313,
  H5: 50,
  H6: 30,
});

/** The NVM image of `cal`: the 88h-A1h and E1h-E7h blocks. */
export function bme280CalibrationBytes(cal: Bme280Calibration): { a: Buffer; b: Buffer } {
  const a = Buffer.alloc(BME280_CALIB_A_LENGTH);
  a.writeUInt16LE(cal.T1, 0);
  a.writeInt16LE(cal.T2, 2);
  a.writeInt16LE(cal.T3, 4);
  a.writeUInt16LE(cal.P1, 6);
  [cal.P2, cal.P3, cal.P4, cal.P5, cal.P6, cal.P7, cal.P8, cal.P9].forEach((value, i) => a.writeInt16LE(value, 8 + 2 * i));
  a.writeUInt8(cal.H1, 25);
  const b = Buffer.alloc(BME280_CALIB_B_LENGTH);
  b.writeInt16LE(cal.H2, 0);
  b.writeUInt8(cal.H3, 2);
  b.writeUInt8((cal.H4 >> 4) & 0xff, 3);
  b.writeUInt8(((cal.H5 & 0x0f) << 4) | (cal.H4 & 0x0f), 4);
  b.writeUInt8((cal.H5 >> 4) & 0xff, 5);
  b.writeInt8(cal.H6, 6);
  return { a, b };
}

/** The integer in [lo, hi] whose f is nearest `target`, for f monotonic on that interval. */
function invert(f: (x: number) => number, lo: number, hi: number, target: number): number {
  const increasing = f(hi) >= f(lo);
  let a = lo;
  let b = hi;
  while (b - a > 1) {
    const mid = Math.floor((a + b) / 2);
    if (f(mid) < target === increasing) a = mid;
    else b = mid;
  }
  return Math.abs(f(a) - target) <= Math.abs(f(b) - target) ? a : b;
}

const ADC20_MAX = 0xfffff;
const ADC16_MAX = 0xffff;
/** NVM copy after power-on or soft reset, datasheet 1.1 (start-up time). */
const NVM_COPY_MS = 2;

interface Oversampling {
  osrsT: number;
  osrsP: number;
  osrsH: number;
}

interface Forced extends Oversampling {
  doneAt: number;
}

interface Normal extends Oversampling {
  startedAt: number;
  measureMs: number;
  periodMs: number;
  /** Index of the last measurement whose results are in the data registers; -1 before the first ends. */
  latched: number;
}

export class Bme280Model extends ByteRegisterModel {
  readonly temperatureC: Quantity;
  readonly pressurePa: Quantity;
  readonly humidityPct: Quantity;
  private forced: Forced | undefined;
  private normal: Normal | undefined;
  private nvmCopyUntil = 0;

  constructor(
    private readonly ctx: ChipContext,
    private readonly calibration: Readonly<Bme280Calibration> = BME280_EXAMPLE_CALIBRATION,
  ) {
    super(256);
    this.temperatureC = new Quantity(ctx, 'temperatureC', 22, 84);
    this.pressurePa = new Quantity(ctx, 'pressurePa', 101325, 31000);
    this.humidityPct = new Quantity(ctx, 'humidityPct', 45, 100);
    ctx.faults.register(ctx.id, valueFaultKinds);
    const { a, b } = bme280CalibrationBytes(calibration);
    a.copy(this.memory, BME280_REG.calibA);
    b.copy(this.memory, BME280_REG.calibB);
    this.memory[BME280_REG.id] = BME280_CHIP_ID;
    this.reset();
  }

  /** Power-on values of the control and data registers, and the NVM copy that follows a reset. */
  private reset(): void {
    this.memory.fill(0, BME280_REG.ctrlHum, BME280_REG.config + 1);
    this.memory.writeUIntBE(BME280_SKIPPED_20BIT << 4, BME280_REG.data, 3);
    this.memory.writeUIntBE(BME280_SKIPPED_20BIT << 4, BME280_REG.data + 3, 3);
    this.memory.writeUInt16BE(BME280_SKIPPED_16BIT, BME280_REG.data + 6);
    this.forced = undefined;
    this.normal = undefined;
    this.nvmCopyUntil = this.ctx.clock.now() + NVM_COPY_MS;
  }

  protected override onWrite(register: number, value: number): boolean {
    this.catchUp();
    switch (register) {
      case BME280_REG.reset:
        if (value === BME280_RESET_WORD) this.reset();
        return false;
      case BME280_REG.ctrlHum:
        this.memory[register] = value & 0x07;
        return false;
      case BME280_REG.ctrlMeas: {
        const now = this.ctx.clock.now();
        const mode = value & 0x03;
        const oversampling = { osrsT: value >> 5, osrsP: (value >> 2) & 0x07, osrsH: this.memory[BME280_REG.ctrlHum]! & 0x07 };
        const measureMs = bme280MeasurementTimeMs(oversampling.osrsT, oversampling.osrsP, oversampling.osrsH, 'typical');
        this.forced = mode === BME280_MODE.FORCED || mode === 0b10 ? { ...oversampling, doneAt: now + measureMs } : undefined;
        this.normal =
          mode === BME280_MODE.NORMAL
            ? { ...oversampling, startedAt: now, measureMs, periodMs: measureMs + BME280_STANDBY_MS[this.memory[BME280_REG.config]! >> 5]!, latched: -1 }
            : undefined;
        return true;
      }
      case BME280_REG.config:
        if (!this.normal) this.memory[register] = value & 0xfd;
        return false;
      default:
        return false;
    }
  }

  protected override onRead(start: number, length: number): void {
    // A different chip at the address was put there, so it is fresh out of power-on reset: sleep
    // mode, ctrl_meas and config 0x00 (datasheet table 18, reset state), whichever register is read.
    if (this.ctx.faults.active(this.ctx.id, 'wrong-identity')) this.reset();
    this.catchUp();
    const now = this.ctx.clock.now();
    const covers = (register: number): boolean => (register - start + 256) % 256 < length;
    if (covers(BME280_REG.status)) {
      this.memory[BME280_REG.status] = (this.measuring(now) ? BME280_STATUS.MEASURING : 0) | (now < this.nvmCopyUntil ? BME280_STATUS.IM_UPDATE : 0);
    }
    if (covers(BME280_REG.id)) {
      this.memory[BME280_REG.id] = this.ctx.faults.hit(this.ctx.id, 'wrong-identity') ? BMP280_CHIP_ID : BME280_CHIP_ID;
    }
  }

  /** Ends the measurements due by now: a forced one returns the chip to sleep, normal mode latches its latest. */
  private catchUp(): void {
    const now = this.ctx.clock.now();
    if (this.forced && now >= this.forced.doneAt) {
      this.latch(this.forced);
      this.forced = undefined;
      this.memory[BME280_REG.ctrlMeas] = this.memory[BME280_REG.ctrlMeas]! & ~0x03;
    }
    const normal = this.normal;
    if (normal && now >= normal.startedAt + normal.measureMs) {
      const latest = Math.floor((now - normal.startedAt - normal.measureMs) / normal.periodMs);
      if (latest > normal.latched) {
        this.latch(normal);
        normal.latched = latest;
      }
    }
  }

  private measuring(now: number): boolean {
    if (this.forced) return true;
    return this.normal !== undefined && (now - this.normal.startedAt) % this.normal.periodMs < this.normal.measureMs;
  }

  /** Ends a measurement: the raw values the compensation formulas turn into the current quantities. */
  private latch({ osrsT, osrsP, osrsH }: Oversampling): void {
    const cal = this.calibration;
    const adcT = invert((adc) => bme280CompensateTemperature(cal, adc).temperatureC, 0, ADC20_MAX, this.temperatureC.get());
    const { tFine } = bme280CompensateTemperature(cal, adcT);
    const adcP = invert((adc) => bme280CompensatePressure(cal, adc, tFine), 0, ADC20_MAX, this.pressurePa.get());
    const adcH = invert((adc) => bme280CompensateHumidity(cal, adc, tFine), 0, ADC16_MAX, this.humidityPct.get());
    this.memory.writeUIntBE((osrsP ? adcP : BME280_SKIPPED_20BIT) << 4, BME280_REG.data, 3);
    this.memory.writeUIntBE((osrsT ? adcT : BME280_SKIPPED_20BIT) << 4, BME280_REG.data + 3, 3);
    this.memory.writeUInt16BE(osrsH ? adcH : BME280_SKIPPED_16BIT, BME280_REG.data + 6);
  }
}
