/**
 * The sim bus fails the way the board's adapter driver does. Sources, per case:
 * - bcm2835: drivers/i2c/busses/i2c-bcm2835.c (raspberrypi/linux): clk_tout_ms = 35 programmed into
 *   BSC CLKT by clk_bcm2835_i2c_set_rate; bcm2835_i2c_isr records S_ERR / S_CLKT; bcm2835_i2c_xfer
 *   returns -EREMOTEIO for S_ERR, -EIO otherwise, -ETIMEDOUT only when wait_for_completion_timeout
 *   runs out (adap->timeout); no -EAGAIN anywhere.
 * - designware: drivers/i2c/busses/i2c-designware-master.c i2c_dw_xfer ("controller timed out",
 *   -ETIMEDOUT) and i2c-designware-common.c i2c_dw_handle_tx_abort (-EREMOTEIO for NOACK, -EAGAIN
 *   for ARB_LOST only).
 * - generic: Documentation/i2c/fault-codes.rst (ENXIO, EBUSY, ETIMEDOUT).
 * - adap->timeout defaults to HZ (1 s): drivers/i2c/i2c-core-base.c i2c_register_adapter.
 */
import { describe, expect, it } from 'vitest';
import type { I2cAdapterKind } from '../../config/board-config.js';
import { WordRegisterModel } from '../../sim/chips/registers.js';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { SimI2cBus } from '../../sim/i2c-bus.js';

class WordChip extends WordRegisterModel {
  readonly registerCount = 2;
  regs = [0x60a0, 0x1900];
  writes = 0;
  protected readRegister(r: number): number {
    return this.regs[r]!;
  }
  protected writeRegister(r: number, v: number): void {
    this.writes += 1;
    this.regs[r] = v;
  }
}

function setup(adapter: I2cAdapterKind) {
  const clock = new VirtualClock(0);
  const faults = new FaultRegistry(clock);
  const bus = new SimI2cBus('i2c-1', clock, faults, { adapter, defaultTimeoutMs: 2000 });
  const chip = new WordChip();
  bus.attach(0x48, chip, 'chip');
  return { clock, faults, bus, chip };
}

/** The outcome of `promise` and the virtual time it took, on a bus whose own deadline is far away. */
async function timed<T>(clock: VirtualClock, promise: Promise<T>): Promise<{ code: string | undefined; errno: string | undefined; ms: number }> {
  const started = clock.now();
  let outcome: { code: string | undefined; errno: string | undefined } | undefined;
  promise.then(
    () => (outcome = { code: undefined, errno: undefined }),
    (err: { code?: string; errno?: string }) => (outcome = { code: err.code, errno: err.errno }),
  );
  // An immediate outcome shows before any virtual time passes; later ones, at the millisecond.
  await new Promise((resolve) => setImmediate(resolve));
  while (!outcome && clock.now() - started < 5000) await clock.advance(1);
  if (!outcome) throw new Error('transfer did not settle within 5 s of virtual time');
  return { ...outcome, ms: clock.now() - started };
}

describe('I2C failures per adapter model', () => {
  it.each([
    ['bcm2835', 'ERR_HAL_NACK', 'EREMOTEIO'],
    ['designware', 'ERR_HAL_NACK', 'EREMOTEIO'],
    ['generic', 'ERR_HAL_NACK', 'ENXIO'],
  ] as const)('%s: a NACK ends the transfer at once with %s (%s)', async (adapter, code, errno) => {
    const { bus, clock, faults } = setup(adapter);
    faults.inject({ target: 'chip', kind: 'nack' });
    expect(await timed(clock, bus.readWord(0x48, 0, 'be'))).toEqual({ code, errno, ms: 0 });
    expect(await timed(clock, bus.readWord(0x20, 0, 'be'))).toEqual({ code, errno, ms: 0 });
  });

  it('bcm2835: a chip stretching the clock forever trips CLKT, EIO after 35 ms, and the bus is free again', async () => {
    const { bus, clock, faults } = setup('bcm2835');
    faults.inject({ target: 'chip', kind: 'bus-timeout', times: 1 });
    expect(await timed(clock, bus.readWord(0x48, 0, 'be'))).toEqual({ code: 'ERR_HAL_IO', errno: 'EIO', ms: 35 });
    expect(await bus.readWord(0x48, 1, 'be')).toBe(0x1900);
  });

  it.each(['designware', 'generic'] as const)('%s: a chip stretching the clock forever holds the bus until the adapter timeout, then ETIMEDOUT', async (adapter) => {
    const { bus, clock, faults } = setup(adapter);
    faults.inject({ target: 'chip', kind: 'bus-timeout', times: 1 });
    expect(await timed(clock, bus.readWord(0x48, 0, 'be'))).toEqual({ code: 'ERR_HAL_TIMEOUT', errno: 'ETIMEDOUT', ms: 1000 });
  });

  it('bcm2835: SDA held low is invisible to the BSC - every address acknowledges, reads are 0x00, writes reach no chip', async () => {
    const { bus, faults, chip } = setup('bcm2835');
    faults.inject({ target: 'i2c-1', kind: 'stuck-bus' });
    expect(await bus.readWord(0x48, 0, 'be')).toBe(0x0000);
    expect(await bus.readByte(0x20, 0)).toBe(0x00);
    expect((await bus.readBlock(0x50, 0, 16)).equals(Buffer.alloc(16))).toBe(true);
    await bus.writeWord(0x48, 1, 0x1234, 'be');
    expect([chip.writes, chip.regs[1]]).toEqual([0, 0x1900]);
  });

  it('designware: SDA held low loses arbitration on the first address bit, EAGAIN; generic: EBUSY', async () => {
    for (const [adapter, errno] of [
      ['designware', 'EAGAIN'],
      ['generic', 'EBUSY'],
    ] as const) {
      const { bus, clock, faults } = setup(adapter);
      faults.inject({ target: 'i2c-1', kind: 'stuck-bus' });
      expect(await timed(clock, bus.readWord(0x48, 0, 'be'))).toEqual({ code: 'ERR_HAL_BUS_BUSY', errno, ms: 0 });
    }
  });

  it('bcm2835 never answers EAGAIN, whatever the fault', async () => {
    const { bus, clock, faults } = setup('bcm2835');
    const errnos = new Set<string | undefined>();
    for (const spec of [
      { target: 'chip', kind: 'nack' },
      { target: 'chip', kind: 'bus-timeout' },
      { target: 'i2c-1', kind: 'stuck-bus' },
    ] as const) {
      const fault = faults.inject({ ...spec, times: 1 });
      errnos.add((await timed(clock, bus.readWord(0x48, 0, 'be'))).errno);
      if (faults.list().some((f) => f.id === fault.id)) faults.clear(fault.id);
    }
    expect([...errnos]).toEqual(['EREMOTEIO', 'EIO', undefined]);
  });

  it('a hung transfer holds the bus past its caller: the caller is freed at its deadline, later transfers fail at once with ERR_HAL_BUS_HELD, and none piles up', async () => {
    const { bus, clock, faults, chip } = setup('designware');
    faults.inject({ target: 'chip', kind: 'bus-timeout', times: 1 });
    expect(await timed(clock, bus.readWord(0x48, 0, 'be', { timeoutMs: 100 }))).toEqual({ code: 'ERR_HAL_TIMEOUT', errno: undefined, ms: 100 });
    expect(bus.held()).toMatchObject({ what: 'read word', target: 'i2c-1@0x48', since: 0 });
    expect(await timed(clock, bus.writeWord(0x48, 1, 0x0102, 'be', { timeoutMs: 100 }))).toEqual({ code: 'ERR_HAL_BUS_HELD', errno: undefined, ms: 0 });
    await clock.advance(900);
    expect(bus.held()).toBeUndefined();
    expect([chip.writes, await bus.readWord(0x48, 1, 'be')]).toEqual([0, 0x1900]);
  });

  it('the stuck-bus and bus-timeout fault descriptions say what the adapter does', () => {
    const { faults } = setup('bcm2835');
    const catalogue = faults.catalogue();
    expect(catalogue['i2c-1']![0]!.description).toContain('every address acknowledges and every byte reads 0x00');
    expect(catalogue['chip']!.find((k) => k.kind === 'bus-timeout')!.description).toContain('EIO after 35 ms');
  });
});
