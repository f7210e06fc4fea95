import { describe, expect, it } from 'vitest';
import { readHoldingRegistersRequest, withCrc } from '../../hal/drivers/modbus-rtu.js';
import { parseNmeaSentence } from '../../hal/drivers/serial-peer.js';
import { openSerialPort } from '../../hal/serial.js';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { ModbusRtuPeer } from '../../sim/peers/modbus-rtu.js';
import { NmeaPeer } from '../../sim/peers/nmea.js';
import { SimSerialBinding } from '../../sim/serial.js';

function board() {
  const clock = new VirtualClock(0);
  const faults = new FaultRegistry(clock);
  const binding = new SimSerialBinding(clock, faults);
  return { clock, faults, binding };
}

const frameOf = (hex: string): Buffer => withCrc(Buffer.from(hex.replace(/ /g, ''), 'hex'));

describe('SimSerialBinding', () => {
  it('refuses paths without a peer with ENOENT, which the HAL maps to ERR_HAL_NOT_FOUND', async () => {
    const { clock, binding } = board();
    await expect(binding.open({ path: '/dev/ttyS9', baudRate: 9600 })).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(openSerialPort(binding, clock, { path: '/dev/ttyS9', baudRate: 9600 })).rejects.toMatchObject({
      code: 'ERR_HAL_NOT_FOUND',
      target: 'serial:/dev/ttyS9',
    });
  });

  it('keeps a port table per binding, so two boards in one process do not share ports', async () => {
    const a = board();
    const b = board();
    a.binding.addPeer('/dev/ttyUSB0', new ModbusRtuPeer({ unitId: 1, holdingRegisters: [1] }), 'plc');
    await expect(b.binding.open({ path: '/dev/ttyUSB0', baudRate: 9600 })).rejects.toMatchObject({ code: 'ENOENT' });
    b.binding.addPeer('/dev/ttyUSB0', new ModbusRtuPeer({ unitId: 1, holdingRegisters: [2] }), 'plc');
    const portA = await a.binding.open({ path: '/dev/ttyUSB0', baudRate: 9600 });
    const portB = await b.binding.open({ path: '/dev/ttyUSB0', baudRate: 9600 });
    expect(portA).not.toBe(portB);
    expect(await a.binding.list()).toHaveLength(1);
  });

  it('locks a port like the kernel does: a second open is busy until the first closes', async () => {
    const { clock, binding } = board();
    binding.addPeer('/dev/ttyUSB0', new NmeaPeer(), 'gps');
    const first = await openSerialPort(binding, clock, { path: '/dev/ttyUSB0', baudRate: 4800 });
    await expect(openSerialPort(binding, clock, { path: '/dev/ttyUSB0', baudRate: 4800 })).rejects.toMatchObject({ code: 'ERR_HAL_BUS_BUSY' });
    await first.close();
    await first.close();
    const second = await openSerialPort(binding, clock, { path: '/dev/ttyUSB0', baudRate: 4800 });
    await second.close();
  });

  it('cancels pending reads on close, which is not a fault', async () => {
    const { clock, binding } = board();
    binding.addPeer('/dev/ttyUSB0', new NmeaPeer(), 'gps');
    const port = await openSerialPort(binding, clock, { path: '/dev/ttyUSB0', baudRate: 4800 });
    const pending = port.readUntil({ timeoutMs: 5000, isComplete: (data) => data.includes(0x0a) });
    await port.close();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_HAL_CLOSED', canceled: true });
  });
});

describe('ModbusRtuPeer', () => {
  async function plc() {
    const b = board();
    const peer = new ModbusRtuPeer({ unitId: 17, holdingRegisters: { 0x6b: 0x022b, 0x6c: 0x0000, 0x6d: 0x0064 } });
    b.binding.addPeer('/dev/ttyUSB0', peer, 'plc');
    const port = await openSerialPort(b.binding, b.clock, { path: '/dev/ttyUSB0', baudRate: 19200, parity: 'even' });
    const ask = async (request: Buffer, expectBytes: number, waitMs = 50): Promise<Buffer | undefined> => {
      const answer = port.transact(request, { timeoutMs: waitMs, isComplete: (data) => data.length >= expectBytes });
      const settled = Promise.allSettled([answer]);
      await b.clock.advance(waitMs);
      const [result] = await settled;
      return result?.status === 'fulfilled' ? result.value : undefined;
    };
    return { ...b, peer, port, ask };
  }

  it('answers the Modbus specification example: read 3 registers from 0x6b of unit 17', async () => {
    const { ask } = await plc();
    expect(await ask(readHoldingRegistersRequest(17, 0x6b, 3), 11)).toEqual(frameOf('11 03 06 022b 0000 0064'));
  });

  it('delivers the answer after the request, frame gap, turnaround and answer have taken their time', async () => {
    const { port, clock } = await plc();
    // 19200 baud 8E1: 11 bits a character; the frame gap is 3.5 characters up to 19200 baud.
    const charMs = 11 / 19.2;
    let arrivedAt = 0;
    const t0 = clock.now();
    const answer = port.transact(readHoldingRegistersRequest(17, 0x6b, 1), {
      timeoutMs: 50,
      isComplete: (data) => {
        arrivedAt = clock.now();
        return data.length >= 7;
      },
    });
    await clock.advance(50);
    await answer;
    expect(arrivedAt - t0).toBeCloseTo(8 * charMs + 3.5 * charMs + 2 + 7 * charMs, 9);
  });

  it('answers exception 0x02 for an address it does not have and 0x01 for a function it does not know', async () => {
    const { ask } = await plc();
    expect(await ask(readHoldingRegistersRequest(17, 0x00, 1), 5)).toEqual(frameOf('11 83 02'));
    expect(await ask(readHoldingRegistersRequest(17, 0x6c, 2 + 1), 5)).toEqual(frameOf('11 83 02'));
    expect(await ask(frameOf('11 2b 0e 01 00'), 5)).toEqual(frameOf('11 ab 01'));
  });

  it('writes a single register and echoes the request', async () => {
    const { ask, peer } = await plc();
    const request = frameOf('11 06 006c 1234');
    expect(await ask(request, 8)).toEqual(request);
    expect(peer.registers.get(0x6c)).toBe(0x1234);
  });

  it('ignores frames for other units and frames with a bad CRC; executes broadcasts silently', async () => {
    const { ask, peer } = await plc();
    expect(await ask(readHoldingRegistersRequest(5, 0x6b, 1), 1)).toBeUndefined();
    const corrupted = readHoldingRegistersRequest(17, 0x6b, 1);
    corrupted[7] = corrupted[7]! ^ 0xff;
    expect(await ask(corrupted, 1)).toBeUndefined();
    expect(peer.rejectedFrames).toBe(1);
    expect(await ask(frameOf('00 06 006d 0001'), 1)).toBeUndefined();
    expect(peer.registers.get(0x6d)).toBe(1);
  });
});

describe('NmeaPeer', () => {
  it('sends one valid GGA sentence per virtual second, stamped with the board time', async () => {
    const clock = new VirtualClock(Date.UTC(2024, 2, 14, 12, 35, 19));
    const faults = new FaultRegistry(clock);
    const binding = new SimSerialBinding(clock, faults);
    const gps = new NmeaPeer({ latitude: 48.1173, longitude: 11.516667 });
    binding.addPeer('/dev/ttyAMA0', gps, 'gps');
    const port = await openSerialPort(binding, clock, { path: '/dev/ttyAMA0', baudRate: 4800 });
    await clock.advance(3500);
    expect(gps.sent).toBe(3);
    const text = (await port.readUntil({ timeoutMs: 10, isComplete: (data) => data.toString('latin1').split('\r\n').length > 3 })).toString('latin1');
    const lines = text.split(/(?<=\r\n)/);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^\$GPGGA,123520\.00,4807\.0380,N,01131\.0000,E,1,08,0\.9,545\.4,M,46\.9,M,,\*[0-9A-F]{2}\r\n$/);
    for (const line of lines) expect(parseNmeaSentence(Buffer.from(line, 'latin1'), port.target).type).toBe('GGA');
    await port.close();
    await clock.advance(3000);
    expect(gps.sent).toBe(3);
  });
});
