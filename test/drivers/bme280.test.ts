import { beforeEach, describe, expect, it } from 'vitest';
import {
  BME280_REG,
  BME280_STATUS,
  Bme280Driver,
  bme280CompensatePressure,
  bme280CompensateTemperature,
  bme280MeasurementTimeMs,
  parseBme280Calibration,
} from '../../hal/drivers/bme280.js';
import { BME280_EXAMPLE_CALIBRATION, Bme280Model, bme280CalibrationBytes } from '../../sim/chips/bme280.js';
import { type BusFixture, busFixture, transportFaultTests } from './bus-fixture.js';

const ADDR = 0x76;
const ID = 'env';

let fx: BusFixture;
let model: Bme280Model;
let driver: Bme280Driver;

beforeEach(() => {
  fx = busFixture();
  model = new Bme280Model(fx.context(ID, { temperatureC: 23.4, pressurePa: 98765, humidityPct: 55.5 }));
  fx.bus.attach(ADDR, model, ID);
  driver = new Bme280Driver(fx.bus, ADDR, fx.clock);
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

describe('BME280 driver on the simulated bus', () => {
  it('identifies a BME280 by chip id 0x60 and reads its calibration', async () => {
    await expect(driver.identify()).resolves.toEqual({ part: 'BME280', details: { chipId: '0x60', digT1: 27504, digP1: 36477, digH1: 75 } });
  });

  it('round-trips temperature, pressure and humidity within the chip resolution', async () => {
    for (const [t, p, h] of [
      [23.4, 98765, 55.5],
      [-12.3, 85000.5, 12.25],
      [61.7, 105432, 91],
    ] as const) {
      model.temperatureC.set(t);
      model.pressurePa.set(p);
      model.humidityPct.set(h);
      const reading = await fx.settle(driver.read());
      expect(Math.abs(reading.temperatureC - t)).toBeLessThan(0.01);
      expect(Math.abs(reading.pressurePa - p)).toBeLessThan(1);
      expect(Math.abs(reading.humidityPct - h)).toBeLessThan(0.05);
    }
  });

  it('waits the maximum measurement time on the clock before reading the data', async () => {
    let done = false;
    const reading = driver.read().then((r) => {
      done = true;
      return r;
    });
    await fx.clock.advance(9);
    expect(done).toBe(false);
    await fx.clock.advance(1);
    expect(done).toBe(true);
    expect((await reading).temperatureC).toBeCloseTo(23.4, 2);
  });

  it('the model holds the measuring bit for the typical time, then latches data and returns to sleep', async () => {
    await fx.clock.advance(5);
    await fx.bus.writeByte(ADDR, BME280_REG.ctrlHum, 0b001);
    await fx.bus.writeByte(ADDR, BME280_REG.ctrlMeas, 0b001_001_01);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(BME280_STATUS.MEASURING);
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.data, 8))]).toEqual([0x80, 0, 0, 0x80, 0, 0, 0x80, 0]);
    await fx.clock.advance(7);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(BME280_STATUS.MEASURING);
    await fx.clock.advance(1);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(0);
    expect(await fx.bus.readByte(ADDR, BME280_REG.ctrlMeas)).toBe(0b001_001_00);
    expect((await fx.bus.readBlock(ADDR, BME280_REG.data, 8)).readUIntBE(3, 3) >> 4).not.toBe(0x80000);
  });

  it('a skipped channel reads the reset pattern 0x80000 (pressure) or 0x8000 (humidity)', async () => {
    await fx.bus.writeByte(ADDR, BME280_REG.ctrlMeas, 0b001_000_01);
    await fx.clock.advance(5);
    const data = await fx.bus.readBlock(ADDR, BME280_REG.data, 8);
    expect(data.readUIntBE(0, 3) >> 4).toBe(0x80000);
    expect(data.readUInt16BE(6)).toBe(0x8000);
  });

  it('soft reset 0xB6 at 0xE0 restores the power-on registers and copies the NVM', async () => {
    await fx.settle(driver.read());
    await fx.bus.writeByte(ADDR, BME280_REG.config, 0b101_100_00);
    await fx.bus.writeByte(ADDR, BME280_REG.reset, 0xb6);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(BME280_STATUS.IM_UPDATE);
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.ctrlHum, 4))]).toEqual([0, BME280_STATUS.IM_UPDATE, 0, 0]);
    expect([...(await fx.bus.readBlock(ADDR, BME280_REG.data, 8))]).toEqual([0x80, 0, 0, 0x80, 0, 0, 0x80, 0]);
    await fx.clock.advance(2);
    expect(await fx.bus.readByte(ADDR, BME280_REG.status)).toBe(0);
    expect(await fx.bus.readByte(ADDR, BME280_REG.reset)).toBe(0);
  });

  it('self-test passes: id, calibration, a measurement completes', async () => {
    const result = await fx.settle(driver.selfTest());
    expect(result.checks.map((c) => [c.name, c.ok])).toEqual([
      ['chip-id', true],
      ['calibration', true],
      ['measurement', true],
    ]);
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
    const selfTest = await fx.settle(driver.selfTest());
    expect(selfTest.ok).toBe(false);
    expect(selfTest.checks.find((c) => c.name === 'chip-id')?.ok).toBe(false);
  });

  it('out-of-range: every quantity is forced past its limits, or the one named', async () => {
    fx.faults.inject({ target: ID, kind: 'out-of-range' });
    const forced = await fx.settle(driver.read());
    expect(forced.temperatureC).toBeCloseTo(84, 1);
    expect(forced.pressurePa).toBeCloseTo(31000, -1);
    expect(forced.humidityPct).toBe(100);
    fx.faults.clearAll();
    fx.faults.inject({ target: ID, kind: 'out-of-range', params: { quantity: 'humidityPct', value: 3 } });
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
