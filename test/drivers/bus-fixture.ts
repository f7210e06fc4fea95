/**
 * A simulated I2C bus on a virtual clock with its fault registry, for driver tests: the driver under
 * test talks to a register-level chip model exactly as it would to the chip on a real bus.
 */
import { expect, it } from 'vitest';
import type { Driver } from '../../hal/drivers/driver.js';
import type { ChipContext } from '../../sim/chips/context.js';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { SimI2cBus } from '../../sim/i2c-bus.js';
import { watchFaults } from '../helpers/faults.js';
import { settle } from '../helpers/settle.js';

export const BUS_ID = 'i2c-1';

export interface BusFixture {
  clock: VirtualClock;
  faults: FaultRegistry;
  bus: SimI2cBus;
  /** The context a chip model with component id `id` gets from the sim board. */
  context(id: string, initial?: Record<string, number>): ChipContext;
  /** Advances virtual time in `stepMs` steps until `promise` settles, then returns or throws its outcome. */
  settle<T>(promise: Promise<T>, stepMs?: number, limitMs?: number): Promise<T>;
}

export function busFixture(startMs = 1_700_000_000_000): BusFixture {
  const clock = new VirtualClock(startMs);
  const faults = new FaultRegistry(clock);
  const bus = new SimI2cBus(BUS_ID, clock, faults);
  return {
    clock,
    faults,
    bus,
    context: (id, initial = {}) => ({ clock, faults, id, initial }),
    settle: (promise, stepMs, limitMs) => settle(clock, promise, stepMs, limitMs),
  };
}

export interface DriverUnderTest {
  fx: BusFixture;
  driver: Driver;
  /** The component id the chip model was attached with: the target of device-level faults. */
  componentId: string;
}

/**
 * The transport faults every I2C driver must turn into the right HalError, and the call options it
 * must hand to every transfer. `setup` runs before each test and returns a driver whose read works.
 */
export function transportFaultTests(setup: () => DriverUnderTest): void {
  it('reads through the simulated bus when no fault is active', async () => {
    const { fx, driver } = setup();
    await expect(fx.settle(driver.read())).resolves.toBeTypeOf('object');
  });

  it('nack: the read rejects with ERR_HAL_NACK naming the device', async () => {
    const { fx, driver, componentId } = setup();
    const watch = watchFaults(fx.faults);
    fx.faults.inject({ target: componentId, kind: 'nack' });
    await expect(fx.settle(driver.read())).rejects.toMatchObject({ code: 'ERR_HAL_NACK', target: driver.target });
    await expect(fx.settle(driver.identify())).rejects.toMatchObject({ code: 'ERR_HAL_NACK' });
    watch.expectAllHit();
  });

  it("bus-timeout: the read rejects with ERR_HAL_TIMEOUT after the caller's timeoutMs of virtual time", async () => {
    const { fx, driver, componentId } = setup();
    const watch = watchFaults(fx.faults);
    fx.faults.inject({ target: componentId, kind: 'bus-timeout' });
    const started = fx.clock.now();
    await expect(fx.settle(driver.read({ timeoutMs: 5 }))).rejects.toMatchObject({ code: 'ERR_HAL_TIMEOUT' });
    const waited = fx.clock.now() - started;
    expect(waited).toBeGreaterThanOrEqual(5);
    expect(waited).toBeLessThan(fx.bus.defaultTimeoutMs);
    watch.expectAllHit();
  });

  it('stuck-bus on the bus id: the read rejects with ERR_HAL_BUS_BUSY', async () => {
    const { fx, driver } = setup();
    const watch = watchFaults(fx.faults);
    fx.faults.inject({ target: BUS_ID, kind: 'stuck-bus' });
    await expect(fx.settle(driver.read())).rejects.toMatchObject({ code: 'ERR_HAL_BUS_BUSY' });
    watch.expectAllHit();
  });

  it('times: 2 fails exactly two operations, then the part answers again', async () => {
    const { fx, driver, componentId } = setup();
    const fault = fx.faults.inject({ target: componentId, kind: 'nack', times: 2 });
    await expect(fx.settle(driver.read())).rejects.toMatchObject({ code: 'ERR_HAL_NACK' });
    await expect(fx.settle(driver.read())).rejects.toMatchObject({ code: 'ERR_HAL_NACK' });
    await expect(fx.settle(driver.read())).resolves.toBeTypeOf('object');
    expect(fx.faults.list()).toHaveLength(0);
    expect(fault.hits).toBe(2);
  });

  it('an aborted signal cancels the call with ERR_HAL_CLOSED and canceled: true', async () => {
    const { fx, driver } = setup();
    const controller = new AbortController();
    controller.abort();
    await expect(fx.settle(driver.read({ signal: controller.signal }))).rejects.toMatchObject({ code: 'ERR_HAL_CLOSED', canceled: true });
  });
}
