/**
 * The I2C backend (i2c-bus on /dev/i2c-N) on a real adapter: i2c-stub (drivers/i2c/i2c-stub.c), a
 * kernel I2C adapter whose chips are register files, loaded by guest.sh with the rpi4 entry's
 * addresses (TMP102 0x48, BME280 0x76, INA219 0x40). Each test fills the registers with the chips'
 * power-on values, then the firmware's drivers (hal/drivers) run unchanged on top.
 */
import { readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { systemClock } from '../../../hal/clock.js';
import { BME280_CHIP_ID, BME280_REG, Bme280Driver } from '../../../hal/drivers/bme280.js';
import { INA219_BUS, INA219_POWER_ON_CONFIG, INA219_REG, Ina219Driver, ina219Scaling } from '../../../hal/drivers/ina219.js';
import { TMP102_POWER_ON_CONFIG, TMP102_REG, Tmp102Driver } from '../../../hal/drivers/tmp102.js';
import { type LinuxI2cBus, openLinuxI2cBus } from '../../../hal/linux/i2c.js';
import { rejection } from '../../helpers/rejection.js';
import { describeInLane } from '../in-guest.js';

const TMP102 = 0x48;
const BME280 = 0x76;
const INA219 = 0x40;
const ina219Options = { shuntOhms: 0.1, maxCurrentA: 3.2 };

let adapter: number;
let bus: LinuxI2cBus;

/** The i2c-stub adapter's number: the one whose name is i2c-stub's adapter name. */
async function stubAdapter(): Promise<number> {
  for (const entry of await readdir('/sys/bus/i2c/devices')) {
    if (!/^i2c-\d+$/.test(entry)) continue;
    const name = (await readFile(join('/sys/bus/i2c/devices', entry, 'name'), 'utf8')).trim();
    if (name === 'SMBus stub driver') return Number(entry.slice(4));
  }
  throw new Error('no i2c-stub adapter: guest.sh loads it with modprobe i2c-stub');
}

/** Power-on register values (TMP102 and INA219 datasheets), at 25 C, 5 V and 40 mV across the shunt. */
async function fillRegisters(): Promise<void> {
  await bus.writeWord(TMP102, TMP102_REG.temperature, 0x1900, 'be');
  await bus.writeWord(TMP102, TMP102_REG.config, TMP102_POWER_ON_CONFIG, 'be');
  await bus.writeWord(TMP102, TMP102_REG.tlow, 0x4b00, 'be');
  await bus.writeWord(TMP102, TMP102_REG.thigh, 0x5000, 'be');
  const scaling = ina219Scaling(ina219Options.shuntOhms, ina219Options.maxCurrentA);
  await bus.writeWord(INA219, INA219_REG.config, INA219_POWER_ON_CONFIG, 'be');
  // Calibrated already, with a conversion ready: 4000 x 10 uV shunt, 1250 x 4 mV bus.
  await bus.writeWord(INA219, INA219_REG.calibration, scaling.calibration, 'be');
  await bus.writeWord(INA219, INA219_REG.shunt, 4000, 'be');
  await bus.writeWord(INA219, INA219_REG.bus, (1250 << 3) | INA219_BUS.CNVR, 'be');
  await bus.writeWord(INA219, INA219_REG.current, Math.round(0.4 / scaling.currentLsbA), 'be');
  await bus.writeWord(INA219, INA219_REG.power, Math.round(2 / scaling.powerLsbW), 'be');
  await bus.writeByte(BME280, BME280_REG.id, BME280_CHIP_ID);
}

beforeAll(async () => {
  adapter = await stubAdapter();
  bus = await openLinuxI2cBus({ id: 'i2c-1', device: `/dev/i2c-${adapter}` }, { clock: systemClock, defaultTimeoutMs: 1000 });
  await fillRegisters();
});
afterAll(async () => {
  await bus?.close();
});

describeInLane('I2C through i2c-bus on i2c-stub', () => {
  it('identifies and reads the chips through the firmware drivers', async () => {
    const tmp102 = new Tmp102Driver(bus, TMP102, systemClock);
    expect(await tmp102.identify()).toMatchObject({ part: 'TMP102', details: { config: '0x60a0' } });
    expect(await tmp102.read()).toEqual({ temperatureC: 25 });
    const ina219 = new Ina219Driver(bus, INA219, ina219Options, systemClock);
    expect(await ina219.identify()).toMatchObject({ part: 'INA219' });
    const reading = await ina219.read();
    expect(reading.busVoltageV).toBeCloseTo(5, 6);
    expect(reading.shuntVoltageV).toBeCloseTo(0.04, 6);
    expect(reading.currentA).toBeCloseTo(0.4, 3);
    expect(reading.overflow).toBe(false);
    expect(await new Bme280Driver(bus, BME280, systemClock).identify()).toMatchObject({ part: 'BME280' });
  });

  it('word and I2C block reads queued at once each come back with their own registers', async () => {
    // Registers 0x10-0x2f of the INA219's address, which its driver does not use: i2c-stub keeps 256
    // per chip, a word each, of which an I2C block transfer reads and writes the low bytes (stub_xfer).
    const words = Array.from({ length: 16 }, (_, i) => 0x2000 + 0x101 * i);
    for (const [i, word] of words.entries()) await bus.writeWord(INA219, 0x20 + i, word, 'be');
    const blocks = [0x10, 0x14, 0x18, 0x1c].map((cmd) => Buffer.from([cmd, cmd + 1, cmd + 2, cmd + 3].map((n) => 0xa0 + n)));
    for (const [i, block] of blocks.entries()) await bus.writeBlock(INA219, 0x10 + 4 * i, block);
    const [readWords, readBlocks] = await Promise.all([
      Promise.all(words.map((_, i) => bus.readWord(INA219, 0x20 + i, 'be'))),
      Promise.all(blocks.map((_, i) => bus.readBlock(INA219, 0x10 + 4 * i, 4))),
    ]);
    expect(readWords).toEqual(words);
    expect(readBlocks).toEqual(blocks);
  });

  it('an address with no chip fails with the errno the adapter gives: i2c-stub answers ENODEV (stub_xfer), where bcm2835 gives EREMOTEIO', async () => {
    const error = await rejection(new Tmp102Driver(bus, 0x49, systemClock).identify());
    expect([error.code, error.errno, error.target]).toEqual(['ERR_HAL_NOT_FOUND', 'ENODEV', 'i2c-1@0x49']);
  });

  it('an address a kernel driver holds is EBUSY from i2c-dev (i2cdev_check_addr), reported as exactly that, and free again for a firmware started after the device is deleted', async () => {
    const sysfs = `/sys/bus/i2c/devices/i2c-${adapter}`;
    const client = `/sys/bus/i2c/devices/${adapter}-0048`;
    // i2c-dev checks the address when it is selected (I2C_SLAVE), and i2c-bus selects it once per
    // address and bus handle: the kernel driver must be bound before this bus first uses 0x48, as a
    // device-tree overlay binds it at boot before the firmware starts.
    await writeFile(join(sysfs, 'new_device'), `tmp102 0x${TMP102.toString(16)}`);
    const fresh = await openLinuxI2cBus({ id: 'i2c-1', device: `/dev/i2c-${adapter}` }, { clock: systemClock, defaultTimeoutMs: 1000 });
    try {
      // The kernel's tmp102 driver accepted the power-on configuration and bound (tmp102_probe).
      expect(basename(await readlink(join(client, 'driver')))).toBe('tmp102');
      const error = await rejection(new Tmp102Driver(fresh, TMP102, systemClock).read());
      expect([error.code, error.errno, error.target]).toEqual(['ERR_HAL_ADDRESS_IN_USE', 'EBUSY', 'i2c-1@0x48']);
      expect(error.message).toContain('a kernel driver (tmp102) holds the address');
      expect(error.message).toContain('the bus is not stuck');
      // The rest of the bus is unaffected.
      expect(await new Ina219Driver(fresh, INA219, ina219Options, systemClock).identify()).toMatchObject({ part: 'INA219' });
      // This bus keeps refusing the address (i2c-bus keeps the file whose selection failed); a
      // firmware started after the device is deleted opens a new one.
      expect((await rejection(new Tmp102Driver(fresh, TMP102, systemClock).identify())).code).toBe('ERR_HAL_ADDRESS_IN_USE');
      await writeFile(join(sysfs, 'delete_device'), `0x${TMP102.toString(16)}`);
      const restarted = await openLinuxI2cBus({ id: 'i2c-1', device: `/dev/i2c-${adapter}` }, { clock: systemClock, defaultTimeoutMs: 1000 });
      try {
        // tmp102_remove restored the configuration it found (drivers/hwmon/tmp102.c), and the address is free.
        expect(await new Tmp102Driver(restarted, TMP102, systemClock).identify()).toMatchObject({ part: 'TMP102', details: { config: '0x60a0' } });
      } finally {
        await restarted.close();
      }
    } finally {
      if (await readlink(join(client, 'driver')).catch(() => undefined)) await writeFile(join(sysfs, 'delete_device'), `0x${TMP102.toString(16)}`);
      await fresh.close();
    }
  });
});
