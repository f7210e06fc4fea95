import { beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../hal/clock.js';
import {
  BME280_REG,
  BME280_STATUS,
  Bme280Driver,
  bme280CompensatePressure,
  bme280CompensateTemperature,
  bme280MeasurementTimeMs,
  parseBme280Calibration,
  parseBme280Data,
} from '../../hal/drivers/bme280.js';
import { BME280_EXAMPLE_CALIBRATION, Bme280Model, bme280CalibrationBytes } from '../../sim/chips/bme280.js';
import { type BusFixture, busFixture, transportFaultTests } from './bus-fixture.js';

const ADDR = 0x76;
const ID = 'env';
/** Register values the datasheet gives for x1 oversampling everywhere, filter off, t_standby 62.5 ms. */
const CTRL_HUM_X1 = 0b00000_001;
const CTRL_MEAS_NORMAL_X1 = 0b001_001_11;
const CTRL_MEAS_FORCED_X1 = 0b001_001_01;
const CONFIG_TSB_62_5 = 0b001_000_00;
/** Normal-mode period at x1: 8 ms typical measurement (9.1) plus 62.5 ms standby. */
const PERIOD_MS = 70.5;

let fx: BusFixture;
let model: Bme280Model;
let driver: Bme280Driver;
/** Every sleep the driver asks its clock for. */
let sleeps: number[];

/** The fixture's virtual clock, recording sleeps. */
function recordingClock(fx: BusFixture, into: number[]): Clock {
  return {
    now: () => fx.clock.now(),
    setTimeout: (fn, ms) => fx.clock.setTimeout(fn, ms),
    setInterval: (fn, ms) => fx.clock.setInterval(fn, ms),
    sleep: (ms, signal) => {
      into.push(ms);
      return fx.clock.sleep(ms, signal);
    },
  };
}

/** Temperature in the chip's data registers right now, compensated. */
async function latchedTemperature(): Promise<number> {
  const { adcT } = parseBme280Data(await fx.bus.readBlock(ADDR, BME280_REG.data, 8));
  return bme280CompensateTemperature(BME280_EXAMPLE_CALIBRATION, adcT).temperatureC;
}

beforeEach(() => {
  fx = busFixture();
  model = new Bme280Model(fx.context(ID, { temperatureC: 23.4, pressurePa: 98765, humidityPct: 55.5 }));
  fx.bus.attach(ADDR, model, ID);
  sleeps = [];
  driver = new Bme280Driver(fx.bus, ADDR, recordingClock(fx, sleeps));
});

describe('BME280 compensation (datasheet worked example)', () => {
  it('adc_T 519888 with dig_T1 27504, dig_T2 26435, dig_T3 -1000 is 25.08 C, t_fine 128422', () => {
    const { temperatureC, tFine } = bme280CompensateTemperature(BME280_EXAMPLE_CALIBRATION, 519888);
    expect(temperatureC).toBeCloseTo(25.08, 2);
    expect(tFine).toBe(128422);
  });

  it('adc_P 415148 at that temperature is 100653.27 Pa', () => {
    // The datasheet's table rounds its intermediate values; unrounded doubles land 0.01 Pa lower.
    expect(Math.abs(bme280CompensatePressure(BME280_EXAMPLE_CALIBRATION, 415148, 128422) - 100653.27)).toBeLessThan(0.02);
  });

  it('measurement time at x1 oversampling: 8 ms typical, 9.3 ms maximum (datasheet 9.1)', () => {
    expect(bme280MeasurementTimeMs(1, 1, 1, 'typical')).toBe(8);
    expect(bme280MeasurementTimeMs(1, 1, 1, 'max')).toBeCloseTo(9.3, 10);
    expect(bme280MeasurementTimeMs(1, 0, 0, 'max')).toBeCloseTo(3.55, 10);
  });

  it('the NVM image packs dig_H4 and dig_H5 into the nibbles of E5h and parses back', async () => {
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.calibA, 2))]).toEqual([0x70, 0x6b]);
    expect([...(await fx.bus.readBlock(ADDR, 0xe4, 3))]).toEqual([0x13, 0x29, 0x03]);
    const negative = { ...BME280_EXAMPLE_CALIBRATION, H4: -300, H5: -7, H6: -12 };
    const { a, b } = bme280CalibrationBytes(negative);
    expect(parseBme280Calibration(a, b)).toEqual(negative);
  });
});

describe('BME280 model at register level', () => {
  it('forced mode: holds the measuring bit for the typical time, then latches data and returns to sleep', async () => {
    await fx.clock.advance(5);
    await fx.bus.writeByte(ADDR, BME280_REG.ctrlHum, CTRL_HUM_X1);
    await fx.bus.writeByte(ADDR, BME280_REG.ctrlMeas, CTRL_MEAS_FORCED_X1);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(BME280_STATUS.MEASURING);
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.data, 8))]).toEqual([0x80, 0, 0, 0x80, 0, 0, 0x80, 0]);
    await fx.clock.advance(7);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(BME280_STATUS.MEASURING);
    await fx.clock.advance(1);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(0);
    expect(await fx.bus.readByte(ADDR, BME280_REG.ctrlMeas)).toBe(0b001_001_00);
    expect((await fx.bus.readBlock(ADDR, BME280_REG.data, 8)).readUIntBE(3, 3) >> 4).not.toBe(0x80000);
  });

  it('normal mode: measures on entering the mode and once per t_measure + t_standby after, however often it is read', async () => {
    await fx.clock.advance(5);
    await fx.bus.writeByte(ADDR, BME280_REG.ctrlHum, CTRL_HUM_X1);
    await fx.bus.writeByte(ADDR, BME280_REG.config, CONFIG_TSB_62_5);
    await fx.bus.writeByte(ADDR, BME280_REG.ctrlMeas, CTRL_MEAS_NORMAL_X1);
    const enteredAt = fx.clock.now();
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(BME280_STATUS.MEASURING);
    await fx.clock.advance(7);
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.data, 8))]).toEqual([0x80, 0, 0, 0x80, 0, 0, 0x80, 0]);
    await fx.clock.advance(1);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(0);
    expect(await latchedTemperature()).toBeCloseTo(23.4, 2);
    expect(await fx.bus.readByte(ADDR, BME280_REG.ctrlMeas)).toBe(CTRL_MEAS_NORMAL_X1);

    model.temperatureC.set(31.2);
    for (let at = 8; at < PERIOD_MS; at += 10) {
      expect(await latchedTemperature()).toBeCloseTo(23.4, 2);
      await fx.clock.advance(10);
    }
    // 78 ms after entering the mode: inside the second measurement (70.5-78.5 ms), data still the first's.
    expect(fx.clock.now() - enteredAt).toBe(78);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(BME280_STATUS.MEASURING);
    expect(await latchedTemperature()).toBeCloseTo(23.4, 2);
    await fx.clock.advance(1);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(0);
    expect(await latchedTemperature()).toBeCloseTo(31.2, 2);
  });

  it('normal mode ignores config writes; sleep mode stops the measurements', async () => {
    await fx.clock.advance(5);
    await fx.bus.writeByte(ADDR, BME280_REG.config, CONFIG_TSB_62_5);
    await fx.bus.writeByte(ADDR, BME280_REG.ctrlMeas, CTRL_MEAS_NORMAL_X1);
    await fx.bus.writeByte(ADDR, BME280_REG.config, 0b101_000_00);
    expect(await fx.bus.readByte(ADDR, BME280_REG.config)).toBe(CONFIG_TSB_62_5);
    await fx.clock.advance(10);
    await fx.bus.writeByte(ADDR, BME280_REG.ctrlMeas, 0b001_001_00);
    model.temperatureC.set(-5);
    await fx.clock.advance(10 * PERIOD_MS);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(0);
    expect(await latchedTemperature()).toBeCloseTo(23.4, 2);
    await fx.bus.writeByte(ADDR, BME280_REG.config, 0b101_000_00);
    expect(await fx.bus.readByte(ADDR, BME280_REG.config)).toBe(0b101_000_00);
  });

  it('a skipped channel reads the reset pattern 0x80000 (pressure) or 0x8000 (humidity)', async () => {
    await fx.bus.writeByte(ADDR, BME280_REG.ctrlMeas, 0b001_000_01);
    await fx.clock.advance(5);
    const data = await fx.bus.readBlock(ADDR, BME280_REG.data, 8);
    expect(data.readUIntBE(0, 3) >> 4).toBe(0x80000);
    expect(data.readUInt16BE(6)).toBe(0x8000);
  });

  it('soft reset 0xB6 at 0xE0 puts a running chip back to sleep with the power-on registers and copies the NVM', async () => {
    await fx.settle(driver.read());
    await fx.bus.writeByte(ADDR, BME280_REG.reset, 0xb6);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(BME280_STATUS.IM_UPDATE);
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.ctrlHum, 4))]).toEqual([0, BME280_STATUS.IM_UPDATE, 0, 0]);
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.data, 8))]).toEqual([0x80, 0, 0, 0x80, 0, 0, 0x80, 0]);
    await fx.clock.advance(2);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(0);
    expect(await fx.bus.readByte(ADDR, BME280_REG.reset)).toBe(0);
    await fx.clock.advance(10 * PERIOD_MS);
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.data, 8))]).toEqual([0x80, 0, 0, 0x80, 0, 0, 0x80, 0]);
  });
});

describe('BME280 driver in normal mode (the default)', () => {
  it('identifies a BME280 by chip id 0x60 and reads its calibration', async () => {
    await expect(driver.identify()).resolves.toEqual({ part: 'BME280', details: { chipId: '0x60', digT1: 27504, digP1: 36477, digH1: 75 } });
  });

  it('the first read writes ctrl_hum 0x01, config 0x20 while still asleep, then ctrl_meas 0x27, and waits the maximum measurement time', async () => {
    let done = false;
    const reading = driver.read().then((r) => {
      done = true;
      return r;
    });
    await fx.clock.advance(9);
    expect(done).toBe(false);
    await fx.clock.advance(1);
    expect(done).toBe(true);
    expect(sleeps).toEqual([10]);
    expect((await reading).temperatureC).toBeCloseTo(23.4, 2);
    // The model ignores config writes in normal mode, as the chip may: 0x20 only sticks if written first.
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.ctrlHum, 4))]).toEqual([CTRL_HUM_X1, 0, CTRL_MEAS_NORMAL_X1, CONFIG_TSB_62_5]);
  });

  it('a read after the first is one burst from ctrl_meas to FEh: two bus transactions, no sleep, no virtual time', async () => {
    await fx.settle(driver.read());
    sleeps.length = 0;
    for (let i = 0; i < 3; i++) {
      await fx.clock.advance(PERIOD_MS);
      const before = fx.bus.transfers;
      const at = fx.clock.now();
      let reading: { temperatureC: number } | undefined;
      void driver.read().then((r) => {
        reading = r;
      });
      await fx.clock.advance(0);
      expect(reading?.temperatureC).toBeCloseTo(23.4, 2);
      expect(fx.bus.transfers - before).toBe(2);
      expect(fx.clock.now()).toBe(at);
    }
    expect(sleeps).toEqual([]);
  });

  it('round-trips temperature, pressure and humidity within the chip resolution, one measurement period after they change', async () => {
    for (const [t, p, h] of [
      [23.4, 98765, 55.5],
      [-12.3, 85000.5, 12.25],
      [61.7, 105432, 91],
    ] as const) {
      model.temperatureC.set(t);
      model.pressurePa.set(p);
      model.humidityPct.set(h);
      await fx.clock.advance(PERIOD_MS);
      const reading = await fx.settle(driver.read());
      expect(Math.abs(reading.temperatureC - t)).toBeLessThan(0.01);
      expect(Math.abs(reading.pressurePa - p)).toBeLessThan(1);
      expect(Math.abs(reading.humidityPct - h)).toBeLessThan(0.05);
    }
  });

  it('reads the latest measurement: a change shows once the next one has ended', async () => {
    await fx.settle(driver.read());
    model.temperatureC.set(40);
    expect((await fx.settle(driver.read())).temperatureC).toBeCloseTo(23.4, 2);
    await fx.clock.advance(PERIOD_MS);
    expect((await fx.settle(driver.read())).temperatureC).toBeCloseTo(40, 2);
  });

  it('after a soft reset the next read finds the chip asleep, configures normal mode again and waits once', async () => {
    await fx.settle(driver.read());
    await fx.clock.advance(PERIOD_MS);
    await fx.bus.writeByte(ADDR, BME280_REG.reset, 0xb6);
    model.temperatureC.set(18.5);
    sleeps.length = 0;
    const before = fx.bus.transfers;
    expect((await fx.settle(driver.read())).temperatureC).toBeCloseTo(18.5, 2);
    // Burst (2), ctrl_hum, config, ctrl_meas (1 each), burst again (2).
    expect(fx.bus.transfers - before).toBe(7);
    expect(sleeps).toEqual([10]);
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.ctrlHum, 4))]).toEqual([CTRL_HUM_X1, 0, CTRL_MEAS_NORMAL_X1, CONFIG_TSB_62_5]);
    const after = fx.bus.transfers;
    await fx.settle(driver.read());
    expect(fx.bus.transfers - after).toBe(2);
    expect(sleeps).toEqual([10]);
  });

  it('a chip already running with other settings is stopped first, so its config write is not ignored', async () => {
    await fx.bus.writeByte(ADDR, BME280_REG.config, 0b101_100_00);
    await fx.bus.writeByte(ADDR, BME280_REG.ctrlMeas, 0b101_101_11);
    await fx.clock.advance(50);
    await fx.settle(driver.read());
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.ctrlHum, 4))]).toEqual([CTRL_HUM_X1, 0, CTRL_MEAS_NORMAL_X1, CONFIG_TSB_62_5]);
  });

  it('a chip that stays asleep fails the read with ERR_HAL_IO', async () => {
    const fx2 = busFixture();
    class StaysAsleep extends Bme280Model {
      protected override onWrite(register: number, value: number): boolean {
        return register === BME280_REG.ctrlMeas ? false : super.onWrite(register, value);
      }
    }
    fx2.bus.attach(ADDR, new StaysAsleep(fx2.context(ID)), ID);
    const asleep = new Bme280Driver(fx2.bus, ADDR, fx2.clock);
    const err = await fx2.settle(asleep.read()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_HAL_IO', target: 'i2c-1@0x76' });
    expect((err as Error).message).toBe('i2c-1@0x76: did not enter normal mode: ctrl_meas 0x00, config 0x20 after writing 0x27, 0x20');
  });

  it('rejects a mode it does not know with ERR_HAL_INVALID_ARG', () => {
    expect(() => new Bme280Driver(fx.bus, ADDR, fx.clock, { mode: 'continuous' as 'normal' })).toThrow(
      expect.objectContaining({ code: 'ERR_HAL_INVALID_ARG', message: "i2c-1@0x76: mode must be 'normal' or 'forced', got continuous" }),
    );
  });
});

describe("BME280 driver with mode: 'forced'", () => {
  it('every read starts one measurement with ctrl_meas 0x25, waits the maximum measurement time, and leaves the chip asleep', async () => {
    const forced = new Bme280Driver(fx.bus, ADDR, recordingClock(fx, sleeps), { mode: 'forced' });
    for (const t of [23.4, 27.9]) {
      model.temperatureC.set(t);
      let done = false;
      const reading = forced.read().then((r) => {
        done = true;
        return r;
      });
      await fx.clock.advance(9);
      expect(done).toBe(false);
      await fx.clock.advance(1);
      expect(done).toBe(true);
      expect((await reading).temperatureC).toBeCloseTo(t, 2);
      expect(await fx.bus.readByte(ADDR, BME280_REG.ctrlMeas)).toBe(CTRL_MEAS_FORCED_X1 & ~0x03);
    }
    expect(sleeps).toEqual([10, 10]);
  });
});

describe('BME280 faults', () => {
  transportFaultTests(() => ({ fx, driver, componentId: ID }));

  it('wrong-identity: the chip answers as a BMP280 (0x58) and identify rejects with ERR_HAL_IDENTITY', async () => {
    fx.faults.inject({ target: ID, kind: 'wrong-identity' });
    const err = await driver.identify().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_HAL_IDENTITY', target: 'i2c-1@0x76' });
    expect((err as Error).message).toBe(
      'i2c-1@0x76: expected a BME280 (chip id 0x60 at 0xd0), found chip id 0x58 (a BMP280, which has no humidity sensor)',
    );
  });

  it('out-of-range: every quantity is forced past its limits, or the one named', async () => {
    fx.faults.inject({ target: ID, kind: 'out-of-range' });
    const forced = await fx.settle(driver.read());
    expect(forced.temperatureC).toBeCloseTo(84, 1);
    expect(forced.pressurePa).toBeCloseTo(31000, -1);
    expect(forced.humidityPct).toBe(100);
    fx.faults.clearAll();
    fx.faults.inject({ target: ID, kind: 'out-of-range', params: { quantity: 'humidityPct', value: 3 } });
    await fx.clock.advance(PERIOD_MS);
    const one = await fx.settle(driver.read());
    expect(one.humidityPct).toBeCloseTo(3, 1);
    expect(one.temperatureC).toBeCloseTo(23.4, 1);
  });

  it('drift: the reading moves with virtual time', async () => {
    fx.faults.inject({ target: ID, kind: 'drift', params: { quantity: 'pressurePa', ratePerS: -10 } });
    await fx.clock.advance(60_000);
    const reading = await fx.settle(driver.read());
    expect(Math.abs(reading.pressurePa - (98765 - 600))).toBeLessThan(2);
  });
});
