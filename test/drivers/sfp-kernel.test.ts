/**
 * The SFP driver reads a module the way the kernel's drivers/net/phy/sfp.c does:
 * - sfp_module_supported: an SFP is identifier 0x03 with extended identifier (A0h byte 1) 0x04.
 * - sfp_sm_mod_probe: a bad CC_BASE refuses the module; a bad CC_EXT is a warning ("EEPROM extended
 *   structure checksum failure") and the extended part (A0h 64-95) is treated as zeros.
 * - sfp_sm_link_check_los: the LOS pin means loss of signal high when A0h byte 65 has
 *   SFP_OPTIONS_LOS_NORMAL (bit 1) alone, low when it has SFP_OPTIONS_LOS_INVERTED (bit 2) alone, and
 *   nothing when it has neither (or both).
 * - sfp_hwmon_insert: A2h is read only when A0h byte 92 has SFP_DIAGMON_DDM and not
 *   SFP_DIAGMON_ADDRMODE (an address change required).
 * - sfp_i2c_read: transfers of at most SFP_EEPROM_BLOCK_SIZE (16) bytes.
 */
import { describe, expect, it } from 'vitest';
import { SfpDriver } from '../../hal/drivers/sfp.js';
import type { I2cBus } from '../../hal/i2c.js';
import { SfpModel, type SfpModelOptions } from '../../sim/chips/sfp.js';
import { SimGpio } from '../../sim/gpio.js';
import { busFixture } from './bus-fixture.js';

async function module(options: SfpModelOptions = {}) {
  const fx = busFixture();
  const model = new SfpModel(fx.context('sfp0'), undefined, options);
  fx.bus.attach(0x50, model.a0, 'sfp0');
  fx.bus.attach(0x51, model.a2, 'sfp0');
  const gpio = new SimGpio(fx.clock, fx.faults);
  gpio.define('sfp0-los', { chip: 'sim-gpio', line: 'GPIO23' }, { source: () => model.losPin });
  const los = await gpio.open({ chip: 'sim-gpio', line: 'GPIO23', direction: 'in' });
  const blocks: Array<{ addr: number; cmd: number; length: number }> = [];
  const bus: I2cBus = Object.assign(Object.create(fx.bus) as I2cBus, {
    readBlock: (addr: number, cmd: number, length: number, opts?: object) => {
      blocks.push({ addr, cmd, length });
      return fx.bus.readBlock(addr, cmd, length, opts);
    },
  });
  const driver = new SfpDriver(bus, { lines: { los } });
  return { fx, model, driver, blocks };
}

describe('SFP as the kernel reads it (drivers/net/phy/sfp.c)', () => {
  it.each([
    ['normal', 'LOS_NORMAL: pin high is loss of signal'],
    ['inverted', 'LOS_INVERTED: pin low is loss of signal'],
  ] as const)('%s: %s, and a healthy module reads no loss', async (los, _what) => {
    const { fx, driver } = await module({ los });
    expect((await fx.settle(driver.identify())).details?.los).toBe(los);
    expect((await fx.settle(driver.read())).rxLos).toBe(false);
    fx.faults.inject({ target: 'sfp0', kind: 'los' });
    expect((await fx.settle(driver.read())).rxLos).toBe(true);
  });

  it('LOS not implemented: the pin (held high by the cage pull-up) means nothing; only the soft RX_LOS bit counts', async () => {
    const { fx, model, driver } = await module({ los: 'none' });
    expect(model.losPin).toBe(1);
    expect((await fx.settle(driver.read())).rxLos).toBe(false);
    fx.faults.inject({ target: 'sfp0', kind: 'los' });
    // A2h byte 110 bit 1, which this module implements (A0h byte 93 bit 4).
    expect((await fx.settle(driver.read())).rxLos).toBe(true);
  });

  it('a bad CC_EXT is a warning that degrades, not a failed identity; the extended part is ignored as the kernel zeroes it', async () => {
    const { fx, driver, blocks } = await module({ badCcExt: true });
    const identity = await fx.settle(driver.identify());
    expect(identity.part).toBe('SFP FINISAR CORP. FTLX1471D3BCL');
    expect(identity.warnings).toEqual([expect.stringContaining('CC_EXT checksum (byte 95)')]);
    expect(identity.details).toMatchObject({ ddm: false, los: 'none', serial: '' });
    blocks.length = 0;
    const reading = await fx.settle(driver.read());
    expect(reading).toEqual({ present: true, rxLos: false, txFault: false, alarm: false, warning: false });
    expect(blocks.every((b) => b.addr === 0x50)).toBe(true);
  });

  it('an extended identifier other than 0x04 is not an SFP the kernel supports', async () => {
    const { fx, driver } = await module({ extendedIdentifier: 0x00 });
    await expect(fx.settle(driver.identify())).rejects.toMatchObject({ code: 'ERR_HAL_IDENTITY', message: expect.stringContaining('extended identifier byte 1 is 0x00, not 0x04') });
  });

  it.each([
    [{ ddm: false }, 'no DDM'],
    [{ addressChange: true }, 'an address change required'],
  ] as const)('%o (%s): A2h is never read; the reading has no measurements and no module thresholds', async (options, _what) => {
    const { fx, driver, blocks } = await module(options);
    expect((await fx.settle(driver.identify())).details?.ddm).toBe(false);
    const reading = await fx.settle(driver.read());
    expect(reading).not.toHaveProperty('temperatureC');
    expect(await fx.settle(driver.thresholds())).toBeUndefined();
    expect(blocks.filter((b) => b.addr === 0x51)).toEqual([]);
  });

  it('reads both EEPROMs in blocks of at most 16 bytes (SFP_EEPROM_BLOCK_SIZE)', async () => {
    const { fx, driver, blocks } = await module();
    await fx.settle(driver.identify());
    await fx.settle(driver.read());
    await fx.settle(driver.thresholds());
    expect(blocks.length).toBeGreaterThan(10);
    expect(Math.max(...blocks.map((b) => b.length))).toBe(16);
    expect(blocks.filter((b) => b.addr === 0x50 && b.cmd < 96).map((b) => b.cmd)).toEqual([0, 16, 32, 48, 64, 80, 64, 80, 64, 80]);
  });

  it('times counts one read of the measurements, however many blocks it takes', async () => {
    const { fx, driver } = await module();
    fx.faults.inject({ target: 'sfp0', kind: 'los', times: 2 });
    expect((await fx.settle(driver.read())).rxLos).toBe(true);
    expect((await fx.settle(driver.read())).rxLos).toBe(true);
    expect((await fx.settle(driver.read())).rxLos).toBe(false);
  });
});
