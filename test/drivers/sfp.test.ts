import { describe, expect, it } from 'vitest';
import { decodeSfpFlags } from '../../hal/drivers/sff8472.js';
import { SfpDriver } from '../../hal/drivers/sfp.js';
import type { GpioLine } from '../../hal/gpio.js';
import { SfpModel, lrThresholds } from '../../sim/chips/sfp.js';
import { ByteRegisterModel } from '../../sim/chips/registers.js';
import { SimGpio } from '../../sim/gpio.js';
import { busFixture, transportFaultTests } from './bus-fixture.js';

/** An EEPROM holding fixed bytes, for decoding tests independent of the module model. */
class Image extends ByteRegisterModel {
  constructor(bytes: Buffer) {
    super(256);
    bytes.copy(this.memory);
  }
}

function sum(bytes: Buffer, from: number, to: number): number {
  return bytes.subarray(from, to + 1).reduce((a, b) => a + b, 0) & 0xff;
}

/** A0h of an 850 nm module carrying Finisar's vendor name and OUI. */
function serialIdImage(diagnosticType = 0x68): Buffer {
  const a0 = Buffer.alloc(256);
  a0[0] = 0x03;
  a0[1] = 0x04;
  a0[2] = 0x07;
  a0.write('FINISAR CORP.   ', 20, 'latin1');
  a0.set([0x00, 0x90, 0x65], 37);
  a0.write('FTLF8519P3BNL   ', 40, 'latin1');
  a0.write('A   ', 56, 'latin1');
  a0.writeUInt16BE(850, 60);
  a0[63] = sum(a0, 0, 62);
  a0[65] = 0x1a;
  a0.write('PKS2B4T         ', 68, 'latin1');
  a0.write('100512  ', 84, 'latin1');
  a0[92] = diagnosticType;
  a0[93] = 0xf0;
  a0[94] = 0x08;
  a0[95] = sum(a0, 64, 94);
  return a0;
}

/** A2h with the SFF-8472 example values in 96-105. */
function diagnosticsImage(): Buffer {
  const a2 = Buffer.alloc(256);
  // Temperature thresholds: +75 / -5 alarm, +70 / 0 warning.
  a2.writeInt16BE(75 * 256, 0);
  a2.writeInt16BE(-5 * 256, 2);
  a2.writeInt16BE(70 * 256, 4);
  a2.writeInt16BE(0, 6);
  a2.writeUInt16BE(36000, 8); // 3.6 V
  a2.writeUInt16BE(30000, 10); // 3.0 V
  a2.writeUInt16BE(34700, 12);
  a2.writeUInt16BE(31300, 14);
  a2.writeUInt16BE(42500, 16); // 85 mA
  a2.writeUInt16BE(5000, 18); // 10 mA
  a2.writeUInt16BE(11220, 24); // 1.122 mW
  a2.writeUInt16BE(1514, 26); // 0.1514 mW
  a2.writeUInt16BE(158, 34); // 0.0158 mW
  a2.writeUInt16BE(0x1980, 96); // +25.5 C
  a2.writeUInt16BE(0x8235, 98); // 3.3333 V
  a2.writeUInt16BE(0x1b58, 100); // 7000 x 2 uA = 14 mA
  a2.writeUInt16BE(0x1388, 102); // 5000 x 0.1 uW = 0.5 mW
  a2.writeUInt16BE(0x0fa0, 104); // 4000 x 0.1 uW = 0.4 mW
  a2[95] = sum(a2, 0, 94);
  return a2;
}

function imageBoard(a0: Buffer, a2: Buffer) {
  const fx = busFixture();
  fx.bus.attach(0x50, new Image(a0), 'sfp0');
  fx.bus.attach(0x51, new Image(a2), 'sfp0');
  return { fx, driver: new SfpDriver(fx.bus) };
}

describe('SfpDriver on known bytes', () => {
  it('identifies the module from A0h', async () => {
    const { fx, driver } = imageBoard(serialIdImage(), diagnosticsImage());
    expect(await fx.settle(driver.identify())).toEqual({
      part: 'SFP FINISAR CORP. FTLF8519P3BNL',
      details: {
        identifier: 3,
        vendor: 'FINISAR CORP.',
        vendorOui: '00:90:65',
        partNumber: 'FTLF8519P3BNL',
        revision: 'A',
        serial: 'PKS2B4T',
        dateCode: '100512',
        wavelengthNm: 850,
        ddm: true,
        calibration: 'internal',
        los: 'normal',
      },
    });
  });

  it('rejects a bad CC_BASE and a non-SFP identifier with ERR_HAL_IDENTITY', async () => {
    const base = serialIdImage();
    base[63] = base[63]! ^ 0x01;
    const stored = base[63]!.toString(16).padStart(2, '0');
    const a = imageBoard(base, diagnosticsImage());
    await expect(a.fx.settle(a.driver.identify())).rejects.toMatchObject({
      code: 'ERR_HAL_IDENTITY',
      target: 'i2c-1@0x50',
      message: `i2c-1@0x50: CC_BASE checksum (byte 63) is 0x${stored}, bytes 0-62 sum to 0x${sum(base, 0, 62).toString(16).padStart(2, '0')}`,
    });

    const qsfp = serialIdImage();
    qsfp[0] = 0x0d;
    qsfp[63] = sum(qsfp, 0, 62);
    const c = imageBoard(qsfp, diagnosticsImage());
    await expect(c.fx.settle(c.driver.identify())).rejects.toMatchObject({ code: 'ERR_HAL_IDENTITY', message: expect.stringContaining('0x0d is not SFP') });
  });

  it('converts the SFF-8472 example values: 0x1980 is 25.5 C, 0x8235 is 3.3333 V', async () => {
    const { fx, driver } = imageBoard(serialIdImage(), diagnosticsImage());
    const reading = await fx.settle(driver.read());
    expect(reading.temperatureC).toBe(25.5);
    expect(reading.vccV).toBeCloseTo(3.3333, 10);
    expect(reading.txBiasMa).toBeCloseTo(14, 10);
    expect(reading.txPowerMw).toBeCloseTo(0.5, 10);
    expect(reading.rxPowerMw).toBeCloseTo(0.4, 10);
    expect(reading).toMatchObject({ present: true, rxLos: false, txFault: false, alarm: false, warning: false });
  });

  it('reads negative temperatures as two’s complement (SFF-8472 table: 0xE700 -25 C, 0xD800 -40 C, 0xFFFF -1/256 C)', async () => {
    for (const [raw, celsius] of [
      [0xe700, -25],
      [0xd800, -40],
      [0xffff, -1 / 256],
      [0x7d00, 125],
    ] as const) {
      const a2 = diagnosticsImage();
      a2.writeUInt16BE(raw, 96);
      const { fx, driver } = imageBoard(serialIdImage(), a2);
      expect((await fx.settle(driver.read())).temperatureC).toBe(celsius);
    }
  });

  it('reports the status bits, and the flags only when byte 93 says they are implemented', async () => {
    const a2 = diagnosticsImage();
    a2[110] = 0x06;
    a2[112] = 0x80; // temperature high alarm
    a2[117] = 0x40; // RX power low warning
    const { fx, driver } = imageBoard(serialIdImage(), a2);
    expect(await fx.settle(driver.read())).toMatchObject({ rxLos: true, txFault: true, alarm: true, warning: true });
    const flags = await fx.settle(driver.flags());
    expect(flags.alarms.temperatureC).toEqual({ high: true, low: false });
    expect(flags.warnings.rxPowerMw).toEqual({ high: false, low: true });
    expect(flags.alarms.vccV).toEqual({ high: false, low: false });

    const noSoft = serialIdImage();
    noSoft[93] = 0x00;
    noSoft[95] = sum(noSoft, 64, 94);
    const quiet = imageBoard(noSoft, a2);
    expect(await quiet.fx.settle(quiet.driver.read())).toMatchObject({ rxLos: false, txFault: false, alarm: false, warning: false });
    await expect(quiet.fx.settle(quiet.driver.flags())).rejects.toMatchObject({ code: 'ERR_HAL_UNSUPPORTED' });
  });

  it('decodes the module thresholds from A2h 0-39 in the units of read()', async () => {
    const { fx, driver } = imageBoard(serialIdImage(), diagnosticsImage());
    const thresholds = (await fx.settle(driver.thresholds()))!;
    expect(thresholds.temperatureC).toEqual({ max: 75, min: -5, warnMax: 70, warnMin: 0 });
    expect(thresholds.vccV.max).toBeCloseTo(3.6, 10);
    expect(thresholds.vccV.warnMin).toBeCloseTo(3.13, 10);
    expect(thresholds.txBiasMa.min).toBeCloseTo(10, 10);
    expect(thresholds.txPowerMw.min).toBeCloseTo(0.1514, 10);
    expect(thresholds.rxPowerMw.min).toBeCloseTo(0.0158, 10);
  });

  it('applies external calibration: slopes, offsets and the RX power polynomial at A2h 56-91', async () => {
    const a2 = diagnosticsImage();
    a2.writeFloatBE(0, 56);
    a2.writeFloatBE(0, 60);
    a2.writeFloatBE(0, 64);
    a2.writeFloatBE(1.25, 68); // Rx_PWR(1)
    a2.writeFloatBE(10, 72); // Rx_PWR(0)
    a2.writeUInt16BE(0x0200, 76); // Tx_I slope 2.0
    a2.writeInt16BE(0, 78);
    a2.writeUInt16BE(0x0100, 80); // Tx_PWR slope 1.0
    a2.writeInt16BE(-100, 82);
    a2.writeUInt16BE(0x0100, 84); // T slope 1.0
    a2.writeInt16BE(0x0100, 86); // T offset +1 C
    a2.writeUInt16BE(0x0100, 88);
    a2.writeInt16BE(0, 90);
    const { fx, driver } = imageBoard(serialIdImage(0x58), a2);
    const reading = await fx.settle(driver.read());
    expect(reading.temperatureC).toBe(26.5);
    expect(reading.vccV).toBeCloseTo(3.3333, 10);
    expect(reading.txBiasMa).toBeCloseTo(28, 10);
    expect(reading.txPowerMw).toBeCloseTo(0.49, 10);
    expect(reading.rxPowerMw).toBeCloseTo((1.25 * 4000 + 10) * 0.0001, 10);
    expect((await fx.settle(driver.identify())).details.calibration).toBe('external');
    expect((await fx.settle(driver.thresholds()))?.temperatureC).toEqual({ max: 76, min: -4, warnMax: 71, warnMin: 1 });
  });

  it('flags() refuses a module without diagnostics', async () => {
    const { fx, driver } = imageBoard(serialIdImage(0x00), diagnosticsImage());
    await expect(fx.settle(driver.flags())).rejects.toMatchObject({ code: 'ERR_HAL_UNSUPPORTED', message: expect.stringContaining('A0h byte 92') });
  });

  it('decodes every flag bit to its quantity', () => {
    const flags = decodeSfpFlags(Buffer.of(0b1010_1010, 0b1000_0000), Buffer.of(0b0101_0101, 0b0100_0000));
    expect(flags.alarms).toEqual({
      temperatureC: { high: true, low: false },
      vccV: { high: true, low: false },
      txBiasMa: { high: true, low: false },
      txPowerMw: { high: true, low: false },
      rxPowerMw: { high: true, low: false },
    });
    expect(flags.warnings.temperatureC).toEqual({ high: false, low: true });
    expect(flags.warnings.rxPowerMw).toEqual({ high: false, low: true });
  });
});

async function moduleBoard(options: { calibration?: 'internal' | 'external'; lines?: boolean; los?: 'normal' | 'inverted' | 'none' } = {}) {
  const fx = busFixture();
  const model = new SfpModel(fx.context('sfp0'), { vendor: 'ACME OPTICS', partNumber: 'AO-10G-LR', serial: 'SN0001' }, {
    calibration: options.calibration ?? 'internal',
    ...(options.los ? { los: options.los } : {}),
  });
  fx.bus.attach(0x50, model.a0, 'sfp0');
  fx.bus.attach(0x51, model.a2, 'sfp0');
  let lines: { modDef0: GpioLine; los: GpioLine; txFault: GpioLine } | undefined;
  if (options.lines) {
    const gpio = new SimGpio(fx.clock, fx.faults);
    gpio.define('sfp0-moddef0', { chip: 'sim-gpio', line: 'GPIO22' }, { source: () => (model.present ? 0 : 1) });
    gpio.define('sfp0-los', { chip: 'sim-gpio', line: 'GPIO23' }, { source: () => model.losPin });
    gpio.define('sfp0-txfault', { chip: 'sim-gpio', line: 'GPIO24' }, { source: () => (model.txFault ? 1 : 0) });
    lines = {
      modDef0: await gpio.open({ chip: 'sim-gpio', line: 'GPIO22', direction: 'in' }),
      los: await gpio.open({ chip: 'sim-gpio', line: 'GPIO23', direction: 'in' }),
      txFault: await gpio.open({ chip: 'sim-gpio', line: 'GPIO24', direction: 'in' }),
    };
  }
  const driver = new SfpDriver(fx.bus, lines ? { lines } : {});
  return { fx, model, driver };
}

describe('SfpDriver on the SfpModel', () => {
  transportFaultTests(() => {
    const fx = busFixture();
    const model = new SfpModel(fx.context('sfp0'));
    fx.bus.attach(0x50, model.a0, 'sfp0');
    fx.bus.attach(0x51, model.a2, 'sfp0');
    return { fx, driver: new SfpDriver(fx.bus), componentId: 'sfp0' };
  });

  it('identifies the module with the identity it was given and valid checksums', async () => {
    const { fx, driver } = await moduleBoard();
    const identity = await fx.settle(driver.identify());
    expect(identity.part).toBe('SFP ACME OPTICS AO-10G-LR');
    expect(identity.details).toMatchObject({ vendor: 'ACME OPTICS', partNumber: 'AO-10G-LR', serial: 'SN0001', wavelengthNm: 1310, ddm: true });
  });

  it.each(['internal', 'external'] as const)('reads a healthy LR module, %s calibration, inside its own thresholds', async (calibration) => {
    const { fx, driver } = await moduleBoard({ calibration });
    const reading = await fx.settle(driver.read());
    expect(reading.temperatureC).toBeCloseTo(34.2, 2);
    expect(reading.vccV).toBeCloseTo(3.31, 4);
    expect(reading.txBiasMa).toBeCloseTo(38.4, 2);
    expect(reading.txPowerMw).toBeCloseTo(0.5012, 4);
    expect(reading.rxPowerMw).toBeCloseTo(0.3981, 3);
    expect(reading).toMatchObject({ present: true, rxLos: false, txFault: false, alarm: false, warning: false });
    const thresholds = (await fx.settle(driver.thresholds()))!;
    for (const [quantity, range] of Object.entries(lrThresholds)) {
      for (const key of ['min', 'max', 'warnMin', 'warnMax'] as const) {
        expect(thresholds[quantity as keyof typeof lrThresholds][key]).toBeCloseTo(range[key], 3);
      }
    }
  });

  it('los: RX_LOS set on the status byte and the cage pin, RX power near 0, RX low alarm', async () => {
    const { fx, driver, model } = await moduleBoard({ lines: true });
    fx.faults.inject({ target: 'sfp0', kind: 'los' });
    expect(model.rxLos).toBe(true);
    const reading = await fx.settle(driver.read());
    expect(reading).toMatchObject({ rxLos: true, txFault: false, alarm: true });
    expect(reading.rxPowerMw).toBeLessThanOrEqual(0.0001);
    expect((await fx.settle(driver.flags())).alarms.rxPowerMw).toEqual({ high: false, low: true });
  });

  it.each(['normal', 'inverted', 'none'] as const)(
    'edge, LOS %s (A0h byte 65, as sfp.c sfp_sm_link_check_los reads it): the edge to the loss level asserts RX_LOS, known once a diagnosis proved the module',
    async (los) => {
      const { fx, driver, model } = await moduleBoard({ lines: true, los });
      expect([driver.edge('los', 0), driver.edge('los', 1)]).toEqual([undefined, undefined]);
      await fx.settle(driver.diagnose());
      fx.faults.inject({ target: 'sfp0', kind: 'los' });
      const loss = model.losPin;
      expect(driver.edge('los', loss)).toBe(los === 'none' ? undefined : 'receiver loss of signal (RX_LOS)');
      expect(driver.edge('los', loss === 1 ? 0 : 1)).toBeUndefined();
      // TX_FAULT high and MOD_DEF0 high (no module grounding it) assert by level alone.
      expect([driver.edge('txFault', 1), driver.edge('txFault', 0)]).toEqual(['transmitter fault (TX_FAULT)', undefined]);
      expect([driver.edge('modDef0', 1), driver.edge('modDef0', 0)]).toEqual(['module not present', undefined]);
    },
  );

  it('tx-fault: TX_FAULT set, TX power 0', async () => {
    const { fx, driver, model } = await moduleBoard({ lines: true });
    fx.faults.inject({ target: 'sfp0', kind: 'tx-fault' });
    expect(model.txFault).toBe(true);
    const reading = await fx.settle(driver.read());
    expect(reading).toMatchObject({ txFault: true, rxLos: false, txPowerMw: 0, alarm: true });
    expect((await fx.settle(driver.flags())).alarms.txPowerMw.low).toBe(true);
  });

  it('ddm-alarm: temperature past the high alarm by default, any quantity by params, with its flags', async () => {
    const { fx, driver } = await moduleBoard();
    const fault = fx.faults.inject({ target: 'sfp0', kind: 'ddm-alarm' });
    const hot = await fx.settle(driver.read());
    expect(hot.temperatureC).toBe(80);
    expect(hot.alarm).toBe(true);
    const flags = await fx.settle(driver.flags());
    expect(flags.alarms.temperatureC).toEqual({ high: true, low: false });
    expect(flags.warnings.temperatureC).toEqual({ high: true, low: false });
    expect(flags.alarms.vccV.high).toBe(false);
    // The firmware judges a module by the thresholds it stores (A2h 0-39, read once per module).
    expect((await fx.settle(driver.thresholds()))!.temperatureC).toMatchObject({ min: -5, max: 75 });
    fx.faults.clear(fault.id);

    fx.faults.inject({ target: 'sfp0', kind: 'ddm-alarm', params: { quantity: 'vccV' } });
    const reading = await fx.settle(driver.read());
    expect(reading.vccV).toBeCloseTo(3.73, 4);
    expect((await fx.settle(driver.flags())).alarms.vccV.high).toBe(true);
  });

  it('out-of-range and drift bend the named quantity', async () => {
    const { fx, driver } = await moduleBoard();
    fx.faults.inject({ target: 'sfp0', kind: 'out-of-range', params: { quantity: 'txBiasMa', value: 97 } });
    expect((await fx.settle(driver.read())).txBiasMa).toBeCloseTo(97, 2);
    fx.faults.clearAll();
    fx.faults.inject({ target: 'sfp0', kind: 'drift', params: { quantity: 'temperatureC', ratePerS: 0.5 } });
    await fx.clock.advance(60_000);
    expect((await fx.settle(driver.read())).temperatureC).toBeCloseTo(64.2, 1);
  });

  it('wrong-identity: a blank EEPROM answers at 0x50 and identify fails with ERR_HAL_IDENTITY', async () => {
    const { fx, driver } = await moduleBoard();
    fx.faults.inject({ target: 'sfp0', kind: 'wrong-identity', times: 1 });
    await expect(fx.settle(driver.identify())).rejects.toMatchObject({ code: 'ERR_HAL_IDENTITY', message: expect.stringContaining('0xff is not SFP') });
    expect((await fx.settle(driver.identify())).part).toBe('SFP ACME OPTICS AO-10G-LR');
  });

  it('unplugged: MOD_DEF0 goes high and identify fails with ERR_HAL_NOT_FOUND; without the line, the EEPROMs NACK', async () => {
    const withLines = await moduleBoard({ lines: true });
    withLines.fx.faults.inject({ target: 'sfp0', kind: 'unplugged' });
    expect(withLines.model.present).toBe(false);
    await expect(withLines.fx.settle(withLines.driver.identify())).rejects.toMatchObject({
      code: 'ERR_HAL_NOT_FOUND',
      message: 'no SFP module in the cage at i2c-1@0x50: MOD_DEF0 (sim-gpio/GPIO22) is high',
    });
    await expect(withLines.fx.settle(withLines.driver.read())).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });

    const bare = await moduleBoard();
    bare.fx.faults.inject({ target: 'sfp0', kind: 'unplugged' });
    await expect(bare.fx.settle(bare.driver.read())).rejects.toMatchObject({ code: 'ERR_HAL_NACK' });
  });

  it('times: a fault bends exactly that many reads of the measurements', async () => {
    const { fx, driver } = await moduleBoard();
    fx.faults.inject({ target: 'sfp0', kind: 'tx-fault', times: 2 });
    expect((await fx.settle(driver.read())).txFault).toBe(true);
    expect((await fx.settle(driver.read())).txFault).toBe(true);
    expect((await fx.settle(driver.read())).txFault).toBe(false);
    expect(fx.faults.list()).toHaveLength(0);
  });

  it('durationMs: the fault clears itself after that much virtual time', async () => {
    const { fx, driver } = await moduleBoard({ lines: true });
    const t0 = fx.clock.now();
    fx.faults.inject({ target: 'sfp0', kind: 'los', atMs: 1000, durationMs: 5000 });
    expect((await fx.settle(driver.read())).rxLos).toBe(false);
    await fx.clock.advanceTo(t0 + 1000);
    expect((await fx.settle(driver.read())).rxLos).toBe(true);
    await fx.clock.advanceTo(t0 + 5990);
    expect((await fx.settle(driver.read())).rxLos).toBe(true);
    await fx.clock.advanceTo(t0 + 6000);
    expect((await fx.settle(driver.read())).rxLos).toBe(false);
  });

  it('soft TX disable (A2h byte 110 bit 6) turns the laser off', async () => {
    const { fx, driver, model } = await moduleBoard();
    await fx.settle(fx.bus.writeByte(0x51, 110, 0x40));
    expect(model.softTxDisable).toBe(true);
    expect((await fx.settle(driver.read())).txPowerMw).toBe(0);
    expect(await fx.settle(fx.bus.readByte(0x51, 110))).toBe(0xc0);
  });

  it('keeps A0h read-only and A2h thresholds fixed against stray writes', async () => {
    const { fx, driver } = await moduleBoard();
    await fx.settle(fx.bus.writeByte(0x50, 20, 0x58));
    await fx.settle(fx.bus.writeByte(0x51, 0, 0x00));
    expect((await fx.settle(driver.identify())).details.vendor).toBe('ACME OPTICS');
    expect((await fx.settle(driver.thresholds()))?.temperatureC.max).toBe(75);
  });
});
