import { describe, expect, it } from 'vitest';
import { crc16Modbus, hasValidCrc, readHoldingRegistersRequest, withCrc } from '../../hal/drivers/modbus-rtu.js';
import { SerialPeerDriver, nmeaChecksum, parseNmeaSentence } from '../../hal/drivers/serial-peer.js';
import { openSerialPort } from '../../hal/serial.js';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { ModbusRtuPeer } from '../../sim/peers/modbus-rtu.js';
import { NmeaPeer } from '../../sim/peers/nmea.js';
import { SimSerialBinding } from '../../sim/serial.js';

const start = Date.UTC(2024, 2, 14, 12, 0, 0);

/** Lets `promise` settle while virtual time moves on by `ms`. */
async function within<T>(clock: VirtualClock, promise: Promise<T>, ms: number): Promise<PromiseSettledResult<T>> {
  const settled = Promise.allSettled([promise]);
  await clock.advance(ms);
  return (await settled)[0]!;
}

function fulfilled<T>(result: PromiseSettledResult<T>): T {
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}

function rejected<T>(result: PromiseSettledResult<T>): { code?: string; message: string; canceled?: boolean } {
  if (result.status === 'fulfilled') throw new Error(`expected a rejection, got ${JSON.stringify(result.value)}`);
  return result.reason as { code?: string; message: string };
}

async function modbusBoard(registers: Record<number, number> = { 0: 0x1234, 1: 7 }, unitId = 1) {
  const clock = new VirtualClock(start);
  const faults = new FaultRegistry(clock);
  const binding = new SimSerialBinding(clock, faults);
  const peer = new ModbusRtuPeer({ unitId: 1, holdingRegisters: registers });
  binding.addPeer('/dev/ttyUSB0', peer, 'plc');
  const spec = { path: '/dev/ttyUSB0', baudRate: 9600 };
  const port = await openSerialPort(binding, clock, spec);
  const driver = new SerialPeerDriver(port, clock, { protocol: 'modbus-rtu', unitId });
  return { clock, faults, binding, peer, port, driver, spec };
}

// 9600 baud 8N1: 10 bits a character.
const charMs = 10 / 9.6;
// request 8 bytes on the wire + 3.5 characters of frame gap + 2 ms turnaround + answer on the wire.
const normalLatencyMs = 8 * charMs + 3.5 * charMs + 2 + 7 * charMs;

describe('Modbus RTU framing', () => {
  it('computes CRC-16/MODBUS as the specification examples give it', () => {
    expect(readHoldingRegistersRequest(1, 0, 1)).toEqual(Buffer.from('010300000001840a', 'hex'));
    expect(readHoldingRegistersRequest(1, 0, 10)).toEqual(Buffer.from('01030000000ac5cd', 'hex'));
    expect(crc16Modbus(Buffer.from('123456789', 'latin1'))).toBe(0x4b37);
    expect(hasValidCrc(withCrc(Buffer.of(0x11, 0x03, 0x02, 0x00, 0x2a)))).toBe(true);
    expect(hasValidCrc(Buffer.from('010300000001840b', 'hex'))).toBe(false);
  });
});

describe('NMEA sentences', () => {
  const gga = '$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n';

  it('accepts the textbook GGA sentence and splits it', () => {
    expect(nmeaChecksum('GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,')).toBe(0x47);
    const sentence = parseNmeaSentence(Buffer.from(gga, 'latin1'), 'serial:test');
    expect(sentence.talker).toBe('GP');
    expect(sentence.type).toBe('GGA');
    expect(sentence.fields[1]).toBe('4807.038');
  });

  it('rejects a wrong checksum, a missing checksum and a missing start with ERR_HAL_IO', () => {
    expect(() => parseNmeaSentence(Buffer.from(gga.replace('*47', '*48'), 'latin1'), 'serial:test')).toThrow(
      expect.objectContaining({ code: 'ERR_HAL_IO', message: expect.stringContaining('checksum 0x48 does not match computed 0x47') }),
    );
    expect(() => parseNmeaSentence(Buffer.from(gga.replace('*47', ''), 'latin1'), 'serial:test')).toThrow(/no \*hh checksum/);
    expect(() => parseNmeaSentence(Buffer.from(gga.slice(1), 'latin1'), 'serial:test')).toThrow(/does not start with \$/);
  });
});

describe('SerialPeerDriver, modbus-rtu', () => {
  it('reads holding register 0 and measures the round trip on the wire', async () => {
    const { clock, driver, binding, peer } = await modbusBoard();
    const reading = fulfilled(await within(clock, driver.read(), 100));
    expect(reading.responding).toBe(true);
    expect(reading.exceptionCode).toBe(0);
    expect(reading.latencyMs).toBeCloseTo(normalLatencyMs, 3);
    expect(binding.openPort('/dev/ttyUSB0')?.lastWrite).toEqual(Buffer.from('010300000001840a', 'hex'));
    expect(peer.requests).toBe(1);

    const identity = fulfilled(await within(clock, driver.identify(), 100));
    expect(identity).toEqual({ part: 'Modbus RTU unit 1', details: { unitId: 1, register0: 0x1234 } });
  });

  it('takes an exception answer as proof of life and reports it', async () => {
    const { clock, driver } = await modbusBoard({ 100: 5 });
    const reading = fulfilled(await within(clock, driver.read(), 100));
    expect(reading).toMatchObject({ responding: true, exceptionCode: 0x02 });
    expect(reading.latencyMs).toBeCloseTo(8 * charMs + 3.5 * charMs + 2 + 5 * charMs, 3);
    const identity = fulfilled(await within(clock, driver.identify(), 100));
    expect(identity.details).toMatchObject({ exception: 'ILLEGAL DATA ADDRESS (0x02)' });
  });

  it('times out when another unit is probed, because slaves ignore frames for others', async () => {
    const { clock, driver } = await modbusBoard(undefined, 2);
    const error = rejected(await within(clock, driver.read({ timeoutMs: 80 }), 100));
    expect(error.code).toBe('ERR_HAL_TIMEOUT');
    expect(error.message).toBe('serial:/dev/ttyUSB0: no answer from Modbus unit 2 within 80 ms');
  });

  it('fails with ERR_HAL_TIMEOUT while the peer is silent, and recovers when `times` is used up', async () => {
    const { clock, driver, faults } = await modbusBoard();
    faults.inject({ target: 'plc', kind: 'silent', times: 1 });
    expect(rejected(await within(clock, driver.read(), 150)).code).toBe('ERR_HAL_TIMEOUT');
    expect(fulfilled(await within(clock, driver.read(), 100)).responding).toBe(true);
  });

  it('fails with ERR_HAL_IO naming what is wrong when the peer sends garbage', async () => {
    const { clock, driver, faults } = await modbusBoard();
    faults.inject({ target: 'plc', kind: 'garbage', durationMs: 2000 });
    const messages: string[] = [];
    for (let i = 0; i < 8; i++) {
      const error = rejected(await within(clock, driver.read(), 150));
      expect(error.code).toBe('ERR_HAL_IO');
      messages.push(error.message);
    }
    expect(messages.some((message) => /CRC 0x[0-9a-f]{4} does not match computed/.test(message))).toBe(true);
    expect(messages.every((message) => /garbled Modbus answer|never formed a whole answer/.test(message))).toBe(true);

    await clock.advance(2000);
    expect(fulfilled(await within(clock, driver.read(), 100)).latencyMs).toBeCloseTo(normalLatencyMs, 3);
  });

  it('reports the device gone when unplugged, refuses to reopen until replugged, then answers again', async () => {
    const { clock, driver, faults, binding, spec, port } = await modbusBoard();
    const pending = within(clock, driver.read(), 100);
    const fault = faults.inject({ target: 'plc', kind: 'unplugged' });
    const error = rejected(await pending);
    expect(error).toMatchObject({ code: 'ERR_HAL_CLOSED', canceled: false });
    expect(error.message).toContain('went away');
    expect(port.isOpen).toBe(false);
    await expect(driver.read()).rejects.toMatchObject({ code: 'ERR_HAL_CLOSED', canceled: false });
    await expect(openSerialPort(binding, clock, spec)).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND', errno: 'ENOENT' });
    await expect(binding.list()).resolves.toEqual([]);

    faults.clear(fault.id);
    const replugged = await openSerialPort(binding, clock, spec);
    const again = new SerialPeerDriver(replugged, clock, { protocol: 'modbus-rtu' });
    expect(fulfilled(await within(clock, again.read(), 100)).latencyMs).toBeCloseTo(normalLatencyMs, 3);
    await port.close();
    await replugged.close();
  });

  it('counts the failed read and each refused open against `times`', async () => {
    const { clock, driver, faults, binding, spec } = await modbusBoard();
    const pending = within(clock, driver.read(), 100);
    faults.inject({ target: 'plc', kind: 'unplugged', times: 2 });
    expect(rejected(await pending).code).toBe('ERR_HAL_CLOSED');
    await expect(openSerialPort(binding, clock, spec)).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });
    const port = await openSerialPort(binding, clock, spec);
    expect(port.isOpen).toBe(true);
    await port.close();
  });

  it('replugs by itself after `durationMs` of virtual time', async () => {
    const { clock, faults, binding, spec } = await modbusBoard();
    faults.inject({ target: 'plc', kind: 'unplugged', atMs: 1000, durationMs: 5000 });
    await clock.advance(1000);
    await expect(openSerialPort(binding, clock, spec)).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });
    await clock.advance(4999);
    await expect(openSerialPort(binding, clock, spec)).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });
    await clock.advance(1);
    const port = await openSerialPort(binding, clock, spec);
    const driver = new SerialPeerDriver(port, clock, { protocol: 'modbus-rtu' });
    expect(fulfilled(await within(clock, driver.read(), 100)).responding).toBe(true);
  });

  it('rejects a unit id outside 1-247 when built', async () => {
    const { port, clock } = await modbusBoard();
    expect(() => new SerialPeerDriver(port, clock, { protocol: 'modbus-rtu', unitId: 248 })).toThrow(
      expect.objectContaining({ code: 'ERR_HAL_INVALID_ARG', message: expect.stringContaining('unitId 248') }),
    );
  });
});

describe('SerialPeerDriver, nmea', () => {
  async function gpsBoard() {
    const clock = new VirtualClock(start);
    const faults = new FaultRegistry(clock);
    const binding = new SimSerialBinding(clock, faults);
    const gps = new NmeaPeer();
    binding.addPeer('/dev/ttyAMA0', gps, 'gps');
    const port = await openSerialPort(binding, clock, { path: '/dev/ttyAMA0', baudRate: 4800 });
    const driver = new SerialPeerDriver(port, clock, { protocol: 'nmea' });
    return { clock, faults, gps, driver };
  }

  it('waits for the next whole sentence and checks its checksum', async () => {
    const { clock, gps, driver } = await gpsBoard();
    const sentenceMs = gps.sentence(start + 1000).length * (10 / 4.8);
    const reading = fulfilled(await within(clock, driver.read(), 1500));
    expect(reading.latencyMs).toBeCloseTo(1000 + sentenceMs, 3);
    const identity = fulfilled(await within(clock, driver.identify(), 1500));
    expect(identity).toEqual({ part: 'NMEA GPGGA', details: { talker: 'GP', sentence: 'GGA' } });
  });

  it('does not pass on sentences buffered before a talker went quiet', async () => {
    const { clock, faults, gps, driver } = await gpsBoard();
    await clock.advance(3500);
    expect(gps.sent).toBe(3);
    faults.inject({ target: 'gps', kind: 'silent' });
    expect(rejected(await within(clock, driver.read({ timeoutMs: 1500 }), 2000)).code).toBe('ERR_HAL_TIMEOUT');
  });

  it('fails with ERR_HAL_IO on corrupted sentences', async () => {
    const { clock, faults, driver } = await gpsBoard();
    faults.inject({ target: 'gps', kind: 'garbage' });
    for (let i = 0; i < 4; i++) {
      const error = rejected(await within(clock, driver.read({ timeoutMs: 1900 }), 2000));
      expect(error.code).toBe('ERR_HAL_IO');
      expect(error.message).toMatch(/bad NMEA sentence|never formed a whole answer/);
    }
  });
});
