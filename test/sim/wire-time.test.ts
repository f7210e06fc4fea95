/**
 * I2C transfers take their time on the wire, on the board clock. UM10204 (I2C-bus specification),
 * section 3.1: every byte is 8 data bits and an acknowledge bit, the address byte included; a
 * transfer is framed by START and STOP, and a write-then-read by a repeated START; table 10 gives
 * START hold/setup and STOP setup/bus-free times of about one clock period each at 100 kHz. Linux
 * i2c-dev puts an SMBus read word on the wire as S addr+W cmd Sr addr+R data data P
 * (Documentation/i2c/smbus-protocol.rst, "SMBus Read Word").
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseBoards, selectBoard } from '../../config/boards.js';
import { SimBoard } from '../../sim/board.js';
import { Tmp102Model } from '../../sim/chips/tmp102.js';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { SimI2cBus, transferBits, transferOverheadUs } from '../../sim/i2c-bus.js';

const TMP102 = 0x48;
/** A read word: START, address+W, command, repeated START, address+R, two data bytes, STOP. */
const READ_WORD_BITS = 1 + 9 + 9 + 1 + 9 + 18 + 1;

function rig(clockHz: number, overheadUs = 0) {
  const clock = new VirtualClock(0);
  const faults = new FaultRegistry(clock);
  const bus = (id: string): SimI2cBus => {
    const made = new SimI2cBus(id, clock, faults, { clockHz, overheadUs });
    made.attach(TMP102, new Tmp102Model({ clock, faults, id: `${id}-temp`, initial: {} }), `${id}-temp`);
    return made;
  };
  /** Board-clock ms at which `promise` settled, the clock moving in `stepMs` steps. */
  const settledAt = async (promise: Promise<unknown>, stepMs = 0.01): Promise<number> => {
    let done = false;
    void promise.finally(() => (done = true));
    while (!done) await clock.advance(stepMs);
    return clock.now();
  };
  return { clock, bus, settledAt };
}

describe('wire time on the simulated I2C bus', () => {
  it('a read word is 48 bit times: 0.48 ms at 100 kHz, not done a step before', async () => {
    expect(transferBits([1, 2])).toBe(READ_WORD_BITS);
    const { clock, bus } = rig(100_000);
    const i2c = bus('i2c-1');
    let done = false;
    void i2c.readWord(TMP102, 0x01, 'be').then(() => (done = true));
    await clock.advance(0.47);
    expect(done).toBe(false);
    await clock.advance(0.01);
    expect(done).toBe(true);
    expect(i2c.traffic).toMatchObject({ transfers: 1, bytes: 5 });
    expect(i2c.traffic.wireMs).toBeCloseTo(0.48, 9);
  });

  it('a 400 kHz bus is four times faster than a 100 kHz one', async () => {
    const slow = rig(100_000);
    const fast = rig(400_000);
    const slowMs = await slow.settledAt(slow.bus('i2c-1').readBlock(TMP102, 0, 16));
    const fastMs = await fast.settledAt(fast.bus('i2c-1').readBlock(TMP102, 0, 16));
    expect(slowMs / fastMs).toBeCloseTo(4, 1);
  });

  it('adds the host overhead per transfer, not per byte', async () => {
    const { bus, settledAt } = rig(100_000, transferOverheadUs);
    expect(await settledAt(bus('i2c-1').readWord(TMP102, 0, 'be'))).toBeCloseTo(READ_WORD_BITS / 100 + transferOverheadUs / 1000, 1);
  });

  it('one bus serialises its transfers; two buses run at the same time', async () => {
    const one = rig(100_000);
    const shared = one.bus('i2c-1');
    const serial = await one.settledAt(Promise.all([shared.readWord(TMP102, 0, 'be'), shared.readWord(TMP102, 0, 'be')]));
    const two = rig(100_000);
    const parallel = await two.settledAt(Promise.all([two.bus('i2c-1').readWord(TMP102, 0, 'be'), two.bus('i2c-2').readWord(TMP102, 0, 'be')]));
    expect(serial).toBeCloseTo(2 * 0.48, 1);
    expect(parallel).toBeCloseTo(0.48, 1);
  });

  it('the sim board takes each bus rate from its entry: 100 kHz by default, what clockHz says otherwise', () => {
    const boards = parseBoards(readFileSync(new URL('../../boards.json', import.meta.url), 'utf8'), 'boards.json');
    const rpi4 = selectBoard(boards, 'rpi4');
    expect(new SimBoard(rpi4, { clock: new VirtualClock(0) }).i2cBuses.map((b) => b.clockHz)).toEqual([100_000]);
    const fast = { ...rpi4, i2c: rpi4.i2c!.map((b) => ({ ...b, clockHz: 400_000 })) };
    expect(new SimBoard(fast, { clock: new VirtualClock(0) }).i2cBuses.map((b) => b.clockHz)).toEqual([400_000]);
  });

  it('refuses a rate outside 10 kHz-1 MHz, naming it', () => {
    const clock = new VirtualClock(0);
    expect(() => new SimI2cBus('i2c-1', clock, new FaultRegistry(clock), { clockHz: 5_000_000 })).toThrow(/5000000 Hz of i2c-1 is outside/);
  });
});
