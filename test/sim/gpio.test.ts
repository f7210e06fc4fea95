import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { SimGpio } from '../../sim/gpio.js';
import type { GpioValue } from '../../hal/gpio.js';

function setup() {
  const clock = new VirtualClock(0);
  const faults = new FaultRegistry(clock);
  const gpio = new SimGpio(clock, faults);
  gpio.define('power-good', { chip: 'sim-gpio', line: 'GPIO5' }, { level: 1 });
  gpio.define('alarm', { chip: 'sim-gpio', line: 6 }, { level: 0 });
  gpio.define('led', { chip: 'sim-gpio', line: 'GPIO17' });
  return { clock, faults, gpio };
}

describe('SimGpio', () => {
  it('reads inputs driven by the simulation, logical with active-low', async () => {
    const { gpio } = setup();
    const plain = await gpio.open({ chip: 'sim-gpio', line: 'GPIO5', direction: 'in' });
    const inverted = await gpio.open({ chip: 'sim-gpio', line: 6, direction: 'in', activeLow: true });
    expect(await plain.read()).toBe(1);
    expect(await inverted.read()).toBe(1);
    gpio.drive('alarm', 1);
    expect(await inverted.read()).toBe(0);
  });

  it('drives outputs to the physical pin, inverted when active-low', async () => {
    const { gpio } = setup();
    const led = await gpio.open({ chip: 'sim-gpio', line: 'GPIO17', direction: 'out', activeLow: true, initial: 0 });
    expect(gpio.level('led')).toBe(1);
    await led.write(1);
    expect(gpio.level('led')).toBe(0);
    expect(await led.read()).toBe(1);
  });

  it('tells watchers about edges, filtered by edge kind and debounced on the board clock', async () => {
    const { gpio, clock } = setup();
    const both = await gpio.open({ chip: 'sim-gpio', line: 6, direction: 'in' });
    const rising = await gpio.open({ chip: 'sim-gpio', line: 6, direction: 'in', edge: 'rising' });
    const debounced = await gpio.open({ chip: 'sim-gpio', line: 6, direction: 'in', debounceMs: 10 });
    const seen: Record<string, Array<[GpioValue, number]>> = { both: [], rising: [], debounced: [] };
    both.watch((v, at) => seen.both!.push([v, at]));
    rising.watch((v, at) => seen.rising!.push([v, at]));
    debounced.watch((v, at) => seen.debounced!.push([v, at]));
    gpio.drive('alarm', 1);
    await clock.advance(3);
    gpio.drive('alarm', 0);
    await clock.advance(3);
    gpio.drive('alarm', 1);
    await clock.advance(20);
    expect(seen.both).toEqual([[1, 0], [0, 3], [1, 6]]);
    expect(seen.rising).toEqual([[1, 0], [1, 6]]);
    expect(seen.debounced).toEqual([[1, 16]]);
  });

  it('stuck-high and stuck-low pin the line whatever drives it, until cleared', async () => {
    const { gpio, faults } = setup();
    const line = await gpio.open({ chip: 'sim-gpio', line: 'GPIO5', direction: 'in' });
    const edges: GpioValue[] = [];
    line.watch((v) => edges.push(v));
    const fault = faults.inject({ target: 'power-good', kind: 'stuck-low' });
    gpio.refresh();
    expect(await line.read()).toBe(0);
    gpio.drive('power-good', 1);
    expect(await line.read()).toBe(0);
    faults.clear(fault.id);
    gpio.refresh();
    expect(await line.read()).toBe(1);
    expect(edges).toEqual([0, 1]);

    const led = await gpio.open({ chip: 'sim-gpio', line: 'GPIO17', direction: 'out' });
    faults.inject({ target: 'led', kind: 'stuck-high' });
    await led.write(0);
    expect(await led.read()).toBe(1);
  });

  it('rejects unknown chips and lines, writes to inputs, and use after close', async () => {
    const { gpio } = setup();
    await expect(gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO5', direction: 'in' })).rejects.toMatchObject({
      code: 'ERR_HAL_NOT_FOUND',
      message: expect.stringContaining('sim-gpio'),
    });
    await expect(gpio.open({ chip: 'sim-gpio', line: 'GPIO99', direction: 'in' })).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });
    const input = await gpio.open({ chip: 'sim-gpio', line: 'GPIO5', direction: 'in' });
    await expect(input.write(1)).rejects.toMatchObject({ code: 'ERR_HAL_INVALID_ARG' });
    await input.close();
    await input.close();
    await expect(input.read()).rejects.toMatchObject({ code: 'ERR_HAL_CLOSED', canceled: true });
  });
});
