import { beforeEach, describe, expect, it } from 'vitest';
import { LM75_CONF, LM75_CONVERSION_MAX_MS, LM75_CONVERSION_TYPICAL_MS, LM75_REG, Lm75Driver, lm75WordToC } from '../../hal/drivers/lm75.js';
import { Lm75Model } from '../../sim/chips/lm75.js';
import { type BusFixture, busFixture, transportFaultTests } from './bus-fixture.js';

const ADDR = 0x49;
const ID = 'psu-temp';

let fx: BusFixture;
let model: Lm75Model;
let driver: Lm75Driver;

beforeEach(() => {
  fx = busFixture();
  model = new Lm75Model(fx.context(ID, { temperatureC: 30 }));
  fx.bus.attach(ADDR, model, ID);
  driver = new Lm75Driver(fx.bus, ADDR, fx.clock);
});

// LM75 datasheet, temperature data format table: temperature -> 9-bit binary (in the top bits of the word).
const table: Array<[number, number]> = [
  [125, 0x0fa],
  [25, 0x032],
  [0.5, 0x001],
  [0, 0x000],
  [-0.5, 0x1ff],
  [-25, 0x1ce],
  [-55, 0x192],
];

describe('LM75 conversions (datasheet table)', () => {
  it.each(table)('%d C is 9-bit %i', (celsius, digital) => {
    expect(lm75WordToC(digital << 7)).toBe(celsius);
  });

  it('the model puts the datasheet words on the wire', async () => {
    for (const [celsius, digital] of table) {
      model.temperatureC.set(celsius);
      expect(await fx.bus.readWord(ADDR, LM75_REG.temperature, 'be')).toBe(digital << 7);
    }
  });
});

describe('LM75 driver on the simulated bus', () => {
  it('identifies an LM75 the way the Linux detect routine does', async () => {
    await expect(driver.identify()).resolves.toEqual({ part: 'LM75', details: { config: '0x00', thystC: 75, tosC: 80 } });
  });

  it('the model mirrors the last byte read at pointers 4-7 and repeats its registers every 8 addresses', async () => {
    expect(await fx.bus.readByte(ADDR, LM75_REG.tos)).toBe(80);
    expect(await fx.bus.readByte(ADDR, 6)).toBe(80);
    expect(await fx.bus.readByte(ADDR, 8 + LM75_REG.thyst)).toBe(75);
    expect(await fx.bus.readByte(ADDR, 5)).toBe(75);
    expect(await fx.bus.readByte(ADDR, 248 + LM75_REG.tos)).toBe(80);
  });

  it('rejects a part whose THYST and TOS are both 0', async () => {
    await fx.bus.writeWord(ADDR, LM75_REG.thyst, 0, 'be');
    await fx.bus.writeWord(ADDR, LM75_REG.tos, 0, 'be');
    await expect(driver.identify()).rejects.toMatchObject({ code: 'ERR_HAL_IDENTITY', message: expect.stringContaining('both 0') });
  });

  it('round-trips the model temperature within half an LSB', async () => {
    for (const celsius of [30, -10.2, 55.74, 99.9, -54.6]) {
      model.temperatureC.set(celsius);
      expect(Math.abs((await driver.read()).temperatureC - celsius)).toBeLessThanOrEqual(0.25);
    }
  });

  // TI SNIS153B, Shutdown Mode and the Temperature-to-Digital Converter Characteristics (conversion
  // time 100 ms typical): the register keeps the value frozen at shutdown until a conversion ends.
  it('shutdown freezes the temperature register until the first conversion after leaving it', async () => {
    await fx.settle(fx.bus.writeByte(ADDR, LM75_REG.config, LM75_CONF.SHUTDOWN));
    model.temperatureC.set(70);
    expect((await fx.settle(driver.read())).temperatureC).toBe(30);
    await fx.settle(fx.bus.writeByte(ADDR, LM75_REG.config, 0));
    expect(lm75WordToC(await fx.settle(fx.bus.readWord(ADDR, LM75_REG.temperature, 'be')))).toBe(30);
    await fx.clock.advance(LM75_CONVERSION_TYPICAL_MS);
    expect(lm75WordToC(await fx.settle(fx.bus.readWord(ADDR, LM75_REG.temperature, 'be')))).toBe(70);
  });

  // drivers/hwmon/lm75.c lm75_probe -> lm75_write_config, which always clears LM75_SHUTDOWN; the
  // driver goes further and refuses the frozen value until the longest conversion (300 ms) can have ended.
  it.each(['detect', 'declared'] as const)('identity %s: wakes a part left in shutdown and never reports its frozen value', async (identity) => {
    const woken = new Lm75Driver(fx.bus, ADDR, fx.clock, identity);
    await fx.settle(fx.bus.writeByte(ADDR, LM75_REG.config, LM75_CONF.SHUTDOWN));
    model.temperatureC.set(70);
    await fx.settle(woken.identify());
    expect((await fx.settle(fx.bus.readByte(ADDR, LM75_REG.config))) & LM75_CONF.SHUTDOWN).toBe(0);
    await expect(fx.settle(woken.read())).rejects.toMatchObject({ code: 'ERR_HAL_NOT_READY', target: woken.target, message: expect.stringContaining('shutdown') });
    await fx.clock.advance(LM75_CONVERSION_MAX_MS);
    expect((await fx.settle(woken.read())).temperatureC).toBe(70);
    expect((await fx.settle(woken.read())).temperatureC).toBe(70);
  });

  it('configuration writes keep the unused bits at 0', async () => {
    await fx.bus.writeByte(ADDR, LM75_REG.config, 0xff);
    expect(await fx.bus.readByte(ADDR, LM75_REG.config)).toBe(0x1f);
  });
});

describe('LM75 faults', () => {
  transportFaultTests(() => ({ fx, driver, componentId: ID }));

  // drivers/hwmon/lm75.c lm75_detect: clones are not detected on purpose and must be instantiated
  // explicitly; the component's identity policy is that choice.
  it('identity declared: a clone lm75_detect rejects (a TMP75 with resolution bits in its configuration) is accepted and read', async () => {
    fx.faults.inject({ target: ID, kind: 'wrong-identity' });
    await expect(fx.settle(driver.identify())).rejects.toMatchObject({ code: 'ERR_HAL_IDENTITY' });
    const declared = new Lm75Driver(fx.bus, ADDR, fx.clock, 'declared');
    expect(await fx.settle(declared.identify())).toEqual({ part: 'LM75-compatible (declared)', details: { config: '0x60' } });
    expect((await fx.settle(declared.read())).temperatureC).toBe(30);
    fx.faults.inject({ target: ID, kind: 'nack' });
    await expect(fx.settle(declared.identify())).rejects.toMatchObject({ code: 'ERR_HAL_NACK' });
  });

  it('wrong-identity: identify rejects with ERR_HAL_IDENTITY naming found and expected', async () => {
    fx.faults.inject({ target: ID, kind: 'wrong-identity' });
    const err = await driver.identify().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_HAL_IDENTITY', target: 'i2c-1@0x49' });
    expect((err as Error).message).toBe('i2c-1@0x49: expected an LM75 (configuration bits 7-5 = 0), found configuration 0x60');
  });

  it('out-of-range: the reading is forced past the limits', async () => {
    fx.faults.inject({ target: ID, kind: 'out-of-range' });
    expect((await driver.read()).temperatureC).toBe(127);
  });

  it('drift: the reading moves with virtual time', async () => {
    fx.faults.inject({ target: ID, kind: 'drift', params: { ratePerS: -0.1 } });
    await fx.clock.advance(100_000);
    expect((await driver.read()).temperatureC).toBe(20);
  });
});
