import { beforeEach, describe, expect, it } from 'vitest';
import { INA219_BUS, INA219_REG, Ina219Driver, ina219Scaling } from '../../hal/drivers/ina219.js';
import { Ina219Model } from '../../sim/chips/ina219.js';
import { type BusFixture, busFixture, transportFaultTests } from './bus-fixture.js';

const ADDR = 0x40;
const ID = 'psu-power';
/** An Adafruit-style breakout: 0.1 ohm shunt, Current_LSB 100 uA. */
const BREAKOUT = { shuntOhms: 0.1, maxCurrentA: 3.2768 };

let fx: BusFixture;
let model: Ina219Model;
let driver: Ina219Driver;

beforeEach(() => {
  fx = busFixture();
  model = new Ina219Model(fx.context(ID, { currentA: 0.75, busVoltageV: 5.1 }), { shuntOhms: BREAKOUT.shuntOhms });
  fx.bus.attach(ADDR, model, ID);
  driver = new Ina219Driver(fx.bus, ADDR, BREAKOUT, fx.clock);
});

const word = (register: number): Promise<number> => fx.bus.readWord(ADDR, register, 'be');

describe('INA219 calibration arithmetic (datasheet 8.5.1)', () => {
  it('0.1 ohm, Current_LSB 100 uA: Cal 4096, Power_LSB 2 mW', () => {
    expect(ina219Scaling(0.1, 3.2768)).toEqual({ currentLsbA: 0.0001, powerLsbW: 0.002, calibration: 4096 });
  });

  it('2 mOhm, Current_LSB 1 mA: Cal 20480 (0x5000)', () => {
    expect(ina219Scaling(0.002, 32.768).calibration).toBe(0x5000);
  });

  it('rejects options that name the bad field', () => {
    expect(() => new Ina219Driver(fx.bus, ADDR, { shuntOhms: 0, maxCurrentA: 1 }, fx.clock)).toThrow(/shuntOhms must be a positive number, got 0/);
    expect(() => new Ina219Driver(fx.bus, ADDR, { shuntOhms: 0.1, maxCurrentA: Number.NaN }, fx.clock)).toThrow(/maxCurrentA/);
    expect(() => new Ina219Driver(fx.bus, ADDR, { shuntOhms: 0.1, maxCurrentA: 0.1 }, fx.clock)).toThrow(
      expect.objectContaining({ code: 'ERR_HAL_INVALID_ARG', message: expect.stringContaining('calibration 134217') }),
    );
    expect(() => new Ina219Driver(fx.bus, ADDR, { ...BREAKOUT, config: 0x399b }, fx.clock)).toThrow(/MODE = 111/);
  });
});

describe('INA219 datasheet example (table 3: 10 A load, 12 V, 2 mOhm, 40 mV range, 16 V bus)', () => {
  it('produces the datasheet register contents and the datasheet readings', async () => {
    const fx2 = busFixture();
    const chip = new Ina219Model(fx2.context('load', { currentA: 10, busVoltageV: 11.98 }), { shuntOhms: 0.002 });
    fx2.bus.attach(ADDR, chip, 'load');
    const ina = new Ina219Driver(fx2.bus, ADDR, { shuntOhms: 0.002, maxCurrentA: 32.768, config: 0x019f }, fx2.clock);
    const reading = await fx2.settle(ina.read());
    const reg = (register: number): Promise<number> => fx2.bus.readWord(ADDR, register, 'be');
    expect(await reg(INA219_REG.config)).toBe(0x019f);
    expect(await reg(INA219_REG.shunt)).toBe(0x07d0);
    expect((await reg(INA219_REG.bus)) & ~(INA219_BUS.CNVR | INA219_BUS.OVF)).toBe(0x5d98);
    expect(await reg(INA219_REG.calibration)).toBe(0x5000);
    expect(await reg(INA219_REG.current)).toBe(0x2710);
    expect(await reg(INA219_REG.power)).toBe(0x1766);
    expect(reading.shuntVoltageV).toBeCloseTo(0.02, 10);
    expect(reading.busVoltageV).toBeCloseTo(11.98, 10);
    expect(reading.currentA).toBeCloseTo(10, 10);
    expect(reading.powerW).toBeCloseTo(119.8, 10);
    expect(reading.overflow).toBe(false);
  });
});

describe('INA219 driver on the simulated bus', () => {
  it('powers on with configuration 0x399F and calibration 0, so current and power read 0', async () => {
    await fx.clock.advance(2);
    expect(await word(INA219_REG.config)).toBe(0x399f);
    expect(await word(INA219_REG.calibration)).toBe(0);
    expect(await word(INA219_REG.shunt)).toBe(7500);
    expect(await word(INA219_REG.current)).toBe(0);
    expect(await word(INA219_REG.power)).toBe(0);
    await expect(driver.identify()).resolves.toEqual({ part: 'INA219', details: { config: '0x399f' } });
  });

  it('round-trips current, bus voltage and power within one LSB', async () => {
    for (const [amps, volts] of [
      [0.75, 5.1],
      [1.2345, 12.3],
      [-0.5, 3.3],
      [0, 24],
    ] as const) {
      model.currentA.set(amps);
      model.busVoltageV.set(volts);
      const r = await fx.settle(driver.read());
      expect(Math.abs(r.currentA - amps)).toBeLessThanOrEqual(0.0001 + 1e-12);
      expect(Math.abs(r.shuntVoltageV - amps * 0.1)).toBeLessThanOrEqual(0.00001);
      expect(Math.abs(r.busVoltageV - volts)).toBeLessThanOrEqual(0.002);
      expect(Math.abs(r.powerW - Math.abs(amps) * volts)).toBeLessThanOrEqual(0.002 + 0.0001 * volts);
      expect(r.overflow).toBe(false);
    }
  });

  it('detects the calibration lost in a chip reset and programs it again', async () => {
    await fx.settle(driver.read());
    expect(await word(INA219_REG.calibration)).toBe(4096);
    await fx.bus.writeWord(ADDR, INA219_REG.config, 0x8000, 'be');
    expect(await word(INA219_REG.config)).toBe(0x399f);
    expect(await word(INA219_REG.calibration)).toBe(0);
    model.currentA.set(1.5);
    const reading = await fx.settle(driver.read());
    expect(reading.currentA).toBeCloseTo(1.5, 4);
    expect(await word(INA219_REG.calibration)).toBe(4096);
  });

  it('CNVR sets after a conversion cycle and clears on a power-register read or a mode write', async () => {
    await fx.bus.writeWord(ADDR, INA219_REG.config, 0x399f, 'be');
    expect((await word(INA219_REG.bus)) & INA219_BUS.CNVR).toBe(0);
    await fx.clock.advance(1.1);
    expect((await word(INA219_REG.bus)) & INA219_BUS.CNVR).toBe(INA219_BUS.CNVR);
    await word(INA219_REG.power);
    expect((await word(INA219_REG.bus)) & INA219_BUS.CNVR).toBe(0);
    await fx.clock.advance(1.1);
    expect((await word(INA219_REG.bus)) & INA219_BUS.CNVR).toBe(INA219_BUS.CNVR);
  });

  it('a new calibration reaches the current register only with the next conversion', async () => {
    await fx.clock.advance(5);
    await fx.bus.writeWord(ADDR, INA219_REG.calibration, 4096, 'be');
    expect(await word(INA219_REG.current)).toBe(0);
    await fx.clock.advance(1.1);
    expect(await word(INA219_REG.current)).toBe(7500);
  });

  it('OVF: a current past the calibrated range sets the overflow flag', async () => {
    const narrow = new Ina219Driver(fx.bus, ADDR, { shuntOhms: 0.1, maxCurrentA: 0.25 }, fx.clock);
    model.currentA.set(1);
    const reading = await fx.settle(narrow.read());
    expect(reading.overflow).toBe(true);
    expect(reading.currentA).toBeCloseTo((32767 * 0.25) / 32768, 6);
  });

  // SBOS448 table 7: the shunt voltage register tops out at the PGA range (32000 counts, 320 mV at /8).
  // The current register computed from it still fits (no OVF), so only the full scale says the
  // current is past the range; the firmware's check fails the part on it (firmware/component-kinds.ts).
  it('a saturated shunt reads the full scale, without OVF, and says so', async () => {
    model.currentA.set(2);
    expect((await fx.settle(driver.read())).shuntSaturated).toBe(false);
    model.currentA.set(4);
    const reading = await fx.settle(driver.read());
    expect(reading.shuntVoltageV).toBeCloseTo(0.32, 5);
    expect(reading).toMatchObject({ overflow: false, shuntSaturated: true });
  });
});

describe('INA219 faults', () => {
  transportFaultTests(() => ({ fx, driver, componentId: ID }));

  it('wrong-identity: an INA226 configuration fails identify with ERR_HAL_IDENTITY', async () => {
    fx.faults.inject({ target: ID, kind: 'wrong-identity' });
    const err = await driver.identify().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_HAL_IDENTITY', target: 'i2c-1@0x40' });
    expect((err as Error).message).toBe('i2c-1@0x40: expected an INA219, found configuration 0x4127 (bit 14 set, which an INA219 never reads)');
  });

  it('out-of-range: current and bus voltage are forced past the limits', async () => {
    fx.faults.inject({ target: ID, kind: 'out-of-range' });
    const r = await fx.settle(driver.read());
    expect(r.currentA).toBeCloseTo(3, 4);
    expect(r.busVoltageV).toBeCloseTo(26, 10);
    fx.faults.clearAll();
    fx.faults.inject({ target: ID, kind: 'out-of-range', params: { quantity: 'busVoltageV', value: 0.5 } });
    expect((await fx.settle(driver.read())).busVoltageV).toBeCloseTo(0.5, 10);
  });

  it('drift: the reading moves with virtual time', async () => {
    fx.faults.inject({ target: ID, kind: 'drift', params: { quantity: 'busVoltageV', ratePerS: -0.01 } });
    await fx.clock.advance(100_000);
    expect((await fx.settle(driver.read())).busVoltageV).toBeCloseTo(4.1, 10);
  });
});
