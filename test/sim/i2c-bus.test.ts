import { describe, expect, it } from 'vitest';
import { ByteRegisterModel, WordRegisterModel } from '../../sim/chips/registers.js';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { SimI2cBus } from '../../sim/i2c-bus.js';

class Eeprom extends ByteRegisterModel {}

class WordChip extends WordRegisterModel {
  readonly registerCount = 2;
  regs = [0x1234, 0xabcd];
  protected readRegister(r: number): number {
    return this.regs[r]!;
  }
  protected writeRegister(r: number, v: number): void {
    this.regs[r] = v;
  }
}

function setup() {
  const clock = new VirtualClock(0);
  const faults = new FaultRegistry(clock);
  const bus = new SimI2cBus('i2c-1', clock, faults, { defaultTimeoutMs: 25 });
  const eeprom = new Eeprom();
  const chip = new WordChip();
  bus.attach(0x50, eeprom, 'eeprom');
  bus.attach(0x48, chip, 'chip');
  return { clock, faults, bus, eeprom, chip };
}

describe('SimI2cBus', () => {
  it('splits SMBus calls into wire transactions the models see', async () => {
    const { bus, chip } = setup();
    expect(await bus.readWord(0x48, 0, 'be')).toBe(0x1234);
    expect(await bus.readWord(0x48, 0, 'le')).toBe(0x3412);
    await bus.writeWord(0x48, 1, 0x0102, 'be');
    expect(chip.regs[1]).toBe(0x0102);
    await bus.writeBlock(0x50, 0x10, Buffer.from('hello'));
    expect((await bus.readBlock(0x50, 0x10, 5)).toString()).toBe('hello');
    expect(await bus.readByte(0x50, 0x11)).toBe('e'.charCodeAt(0));
    await bus.write(0x50, Buffer.of(0x10));
    expect((await bus.read(0x50, 2)).toString()).toBe('he');
  });

  it('NACKs an empty address and rejects addresses and lengths out of range', async () => {
    const { bus } = setup();
    await expect(bus.readByte(0x20, 0)).rejects.toMatchObject({ code: 'ERR_HAL_NACK', errno: 'ENXIO', target: 'i2c-1@0x20' });
    await expect(bus.readByte(0x78, 0)).rejects.toMatchObject({ code: 'ERR_HAL_INVALID_ARG' });
    await expect(bus.readBlock(0x50, 0, 33)).rejects.toMatchObject({ code: 'ERR_HAL_INVALID_ARG' });
  });

  it('bus-timeout fails at the timeout on the board clock, and the queue behind it fails on time too', async () => {
    const { bus, clock, faults } = setup();
    faults.inject({ target: 'chip', kind: 'bus-timeout', times: 1 });
    const hung = bus.readWord(0x48, 0, 'be');
    const queued = bus.readByte(0x50, 0, { timeoutMs: 10 });
    const settled = Promise.allSettled([hung, queued]);
    await clock.advance(25);
    const [a, b] = await settled;
    expect(a).toMatchObject({ status: 'rejected', reason: { code: 'ERR_HAL_TIMEOUT' } });
    expect(b).toMatchObject({ status: 'rejected', reason: { code: 'ERR_HAL_TIMEOUT' } });
    // The generic adapter holds the bus until its 1 s timeout; after that the chip answers again.
    await clock.advance(1000);
    expect(await bus.readWord(0x48, 0, 'be')).toBe(0x1234);
  });

  it('stuck-bus fails every address busy; nack affects only its device', async () => {
    const { bus, faults } = setup();
    const stuck = faults.inject({ target: 'i2c-1', kind: 'stuck-bus' });
    await expect(bus.readByte(0x50, 0)).rejects.toMatchObject({ code: 'ERR_HAL_BUS_BUSY' });
    await expect(bus.readWord(0x48, 0, 'be')).rejects.toMatchObject({ code: 'ERR_HAL_BUS_BUSY' });
    faults.clear(stuck.id);
    faults.inject({ target: 'chip', kind: 'nack' });
    await expect(bus.readWord(0x48, 0, 'be')).rejects.toMatchObject({ code: 'ERR_HAL_NACK' });
    expect(await bus.readByte(0x50, 0)).toBe(0);
  });

  it('never overlaps transfers and fails everything after close as canceled', async () => {
    const { bus } = setup();
    const order: number[] = [];
    await Promise.all([1, 2, 3].map((n) => bus.readByte(0x50, n).then(() => order.push(n))));
    expect(order).toEqual([1, 2, 3]);
    await bus.close();
    await expect(bus.readByte(0x50, 0)).rejects.toMatchObject({ code: 'ERR_HAL_CLOSED', canceled: true });
  });

  it('honours an abort signal', async () => {
    const { bus } = setup();
    const controller = new AbortController();
    controller.abort();
    await expect(bus.readByte(0x50, 0, { signal: controller.signal })).rejects.toMatchObject({ code: 'ERR_HAL_CLOSED', canceled: true });
  });
});
