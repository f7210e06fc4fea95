import { beforeEach, describe, expect, it } from 'vitest';
import { TMP102_CONF, TMP102_REG, Tmp102Driver, tmp102ConfigLooksRight, tmp102TemperatureToC } from '../../hal/drivers/tmp102.js';
import { Tmp102Model } from '../../sim/chips/tmp102.js';
import { type BusFixture, busFixture, transportFaultTests } from './bus-fixture.js';

const ADDR = 0x48;
const ID = 'board-temp';

let fx: BusFixture;
let model: Tmp102Model;
let driver: Tmp102Driver;

beforeEach(() => {
  fx = busFixture();
  model = new Tmp102Model(fx.context(ID, { temperatureC: 21.5 }));
  fx.bus.attach(ADDR, model, ID);
  driver = new Tmp102Driver(fx.bus, ADDR, fx.clock);
});

// SBOS397 table 6 (12-bit) and table 7 (13-bit, extended mode): temperature -> register digital output.
const normalTable: Array<[number, number]> = [
  [127.9375, 0x7ff],
  [100, 0x640],
  [80, 0x500],
  [75, 0x4b0],
  [50, 0x320],
  [25, 0x190],
  [0.25, 0x004],
  [0, 0x000],
  [-0.25, 0xffc],
  [-25, 0xe70],
  [-55, 0xc90],
];
const extendedTable: Array<[number, number]> = [
  [150, 0x0960],
  [128, 0x0800],
  [127.9375, 0x07ff],
  [100, 0x0640],
  [25, 0x0190],
  [0.0625, 0x0001],
  [0, 0x0000],
  [-0.0625, 0x1fff],
  [-25, 0x1e70],
  [-55, 0x1c90],
];

describe('TMP102 conversions (datasheet tables)', () => {
  it.each(normalTable)('12-bit: %d C is digital %i', (celsius, digital) => {
    expect(tmp102TemperatureToC(digital << 4)).toBe(celsius);
  });

  it.each(extendedTable)('13-bit: %d C is digital %i', (celsius, digital) => {
    expect(tmp102TemperatureToC((digital << 3) | 1)).toBe(celsius);
  });

  it('the model puts the datasheet words on the wire in normal mode', async () => {
    for (const [celsius, digital] of normalTable) {
      model.temperatureC.set(celsius);
      expect(await fx.bus.readWord(ADDR, TMP102_REG.temperature, 'be')).toBe(digital << 4);
    }
  });

  it('extended mode: 150 C reads as 150 C, while normal mode saturates at 127.9375 C', async () => {
    model.temperatureC.set(150);
    expect((await driver.read()).temperatureC).toBe(127.9375);
    await fx.bus.writeWord(ADDR, TMP102_REG.config, 0x60a0 | TMP102_CONF.EM, 'be');
    for (const [celsius, digital] of extendedTable) {
      model.temperatureC.set(celsius);
      expect(await fx.bus.readWord(ADDR, TMP102_REG.temperature, 'be')).toBe((digital << 3) | 1);
      expect((await driver.read()).temperatureC).toBe(celsius);
    }
  });
});

describe('TMP102 driver on the simulated bus', () => {
  it('identifies a TMP102 by its power-on configuration 0x60A0', async () => {
    expect(await fx.bus.readWord(ADDR, TMP102_REG.config, 'be')).toBe(0x60a0);
    await expect(driver.identify()).resolves.toMatchObject({ part: 'TMP102', details: { config: '0x60a0', extendedMode: false } });
  });

  it('applies the Linux probe check to the configuration word', () => {
    expect(tmp102ConfigLooksRight(0x60a0)).toBe(true);
    expect(tmp102ConfigLooksRight(0xffb0)).toBe(true);
    expect(tmp102ConfigLooksRight(0x20a0)).toBe(false);
    expect(tmp102ConfigLooksRight(0x60a1)).toBe(false);
  });

  it('round-trips the model temperature within half an LSB', async () => {
    for (const celsius of [21.5, -12.34, 36.6, 84.99, -40.03]) {
      model.temperatureC.set(celsius);
      const { temperatureC } = await driver.read();
      expect(Math.abs(temperatureC - celsius)).toBeLessThanOrEqual(0.0625 / 2);
    }
  });

  it('the model in shutdown freezes the temperature until a one-shot conversion completes', async () => {
    const raw = async (): Promise<number> => tmp102TemperatureToC(await fx.bus.readWord(ADDR, TMP102_REG.temperature, 'be'));
    model.temperatureC.set(30);
    await fx.bus.writeWord(ADDR, TMP102_REG.config, 0x60a0 | TMP102_CONF.SD, 'be');
    model.temperatureC.set(45);
    expect(await raw()).toBe(30);
    await fx.bus.writeWord(ADDR, TMP102_REG.config, 0x60a0 | TMP102_CONF.SD | TMP102_CONF.OS, 'be');
    expect((await fx.bus.readWord(ADDR, TMP102_REG.config, 'be')) & TMP102_CONF.OS).toBe(0);
    await fx.clock.advance(26);
    expect(await raw()).toBe(45);
    expect((await fx.bus.readWord(ADDR, TMP102_REG.config, 'be')) & TMP102_CONF.OS).toBe(TMP102_CONF.OS);
  });

  // drivers/hwmon/tmp102.c tmp102_probe: SD cleared at start, the first reading one conversion
  // (CONVERSION_TIME_MS, 35 ms) later.
  it('takes a chip left in shutdown out of it, as the kernel probe does, and never reports the frozen value', async () => {
    model.temperatureC.set(30);
    await fx.bus.writeWord(ADDR, TMP102_REG.config, 0x60a0 | TMP102_CONF.SD, 'be');
    model.temperatureC.set(45);
    expect((await fx.settle(driver.identify())).details).toMatchObject({ shutdown: true });
    const started = fx.clock.now();
    expect((await fx.settle(driver.read())).temperatureC).toBe(45);
    expect(fx.clock.now() - started).toBeGreaterThanOrEqual(35);
    expect((await fx.bus.readWord(ADDR, TMP102_REG.config, 'be')) & TMP102_CONF.SD).toBe(0);
    expect((await fx.settle(driver.identify())).details).toMatchObject({ shutdown: false, config: '0x60a0' });
  });

  it('wakes a chip put into shutdown later, at the next identify and read, and a fresh driver on its first read', async () => {
    await fx.settle(driver.identify());
    expect((await fx.settle(driver.read())).temperatureC).toBe(21.5);
    await fx.bus.writeWord(ADDR, TMP102_REG.config, 0x60a0 | TMP102_CONF.SD, 'be');
    model.temperatureC.set(60);
    await fx.settle(driver.identify());
    expect((await fx.settle(driver.read())).temperatureC).toBe(60);

    await fx.bus.writeWord(ADDR, TMP102_REG.config, 0x60a0 | TMP102_CONF.SD, 'be');
    model.temperatureC.set(61);
    const fresh = new Tmp102Driver(fx.bus, ADDR, fx.clock);
    expect((await fx.settle(fresh.read())).temperatureC).toBe(61);
  });

  it('fails the read, not reports a stale value, when the chip cannot be taken out of shutdown', async () => {
    await fx.bus.writeWord(ADDR, TMP102_REG.config, 0x60a0 | TMP102_CONF.SD, 'be');
    await fx.settle(driver.identify());
    fx.faults.inject({ target: ID, kind: 'nack' });
    await expect(fx.settle(driver.read())).rejects.toMatchObject({ code: 'ERR_HAL_NACK' });
  });

  it('the AL bit goes active (low) at THIGH and clears below TLOW', async () => {
    const al = async (): Promise<number> => (await fx.bus.readWord(ADDR, TMP102_REG.config, 'be')) & TMP102_CONF.AL;
    model.temperatureC.set(79);
    expect(await al()).toBe(TMP102_CONF.AL);
    model.temperatureC.set(80);
    expect(await al()).toBe(0);
    model.temperatureC.set(76);
    expect(await al()).toBe(0);
    model.temperatureC.set(74.9);
    expect(await al()).toBe(TMP102_CONF.AL);
  });
});

describe('TMP102 faults', () => {
  transportFaultTests(() => ({ fx, driver, componentId: ID }));

  it('wrong-identity: identify rejects with ERR_HAL_IDENTITY naming found and expected', async () => {
    fx.faults.inject({ target: ID, kind: 'wrong-identity' });
    const err = await driver.identify().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_HAL_IDENTITY', target: 'i2c-1@0x48' });
    expect((err as Error).message).toContain('found configuration 0x0000');
    expect((err as Error).message).toContain('expected a TMP102');
  });

  it('wrong-identity with times: 1 affects one identification only', async () => {
    fx.faults.inject({ target: ID, kind: 'wrong-identity', times: 1 });
    await expect(driver.identify()).rejects.toMatchObject({ code: 'ERR_HAL_IDENTITY' });
    await expect(driver.identify()).resolves.toMatchObject({ part: 'TMP102' });
  });

  it('out-of-range: the reading is forced past the limits', async () => {
    fx.faults.inject({ target: ID, kind: 'out-of-range', params: { quantity: 'temperatureC', value: -50 } });
    expect((await driver.read()).temperatureC).toBe(-50);
    fx.faults.clearAll();
    fx.faults.inject({ target: ID, kind: 'out-of-range' });
    expect((await driver.read()).temperatureC).toBe(127.9375);
  });

  it('drift: the reading moves with virtual time', async () => {
    fx.faults.inject({ target: ID, kind: 'drift', params: { quantity: 'temperatureC', ratePerS: 0.5 } });
    expect((await driver.read()).temperatureC).toBe(21.5);
    await fx.clock.advance(60_000);
    expect((await driver.read()).temperatureC).toBe(51.5);
  });
});
