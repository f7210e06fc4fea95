import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { GpioValue } from '../../hal/gpio.js';
import { LinuxGpioController, type OnoffGpio } from '../../hal/linux/gpio.js';
import { importPackage } from '../../hal/linux/optional.js';
import { VirtualClock } from '../../sim/clock.js';
import { makeGpioTree, makeTempDir, pi4Chips, pi5Chips } from './fake-sysfs.js';
import { rejection } from '../helpers/rejection.js';

/** Stands in for onoff's Gpio at the package boundary: records how it was built and what it did. */
class FakeGpio implements OnoffGpio {
  static created: FakeGpio[] = [];
  static failWith: NodeJS.ErrnoException | undefined;
  value: GpioValue;
  written: GpioValue[] = [];
  unexported = false;
  private callbacks: Array<(err: Error | null | undefined, value: GpioValue) => void> = [];

  constructor(
    readonly number: number,
    readonly direction: string,
    readonly edge: string | undefined,
    readonly options: unknown,
  ) {
    if (FakeGpio.failWith) throw FakeGpio.failWith;
    this.value = direction === 'high' ? 1 : 0;
    FakeGpio.created.push(this);
  }

  read(): Promise<GpioValue> {
    return new Promise((resolve) => setImmediate(() => resolve(this.value)));
  }
  readSync(): GpioValue {
    return this.value;
  }
  write(value: GpioValue): Promise<void> {
    this.written.push(value);
    return new Promise((resolve) => setImmediate(resolve));
  }
  /** What onoff's epoll throws for a value file it cannot poll: a bare Error, no errno. */
  static pollFails = false;
  watch(callback: (err: Error | null | undefined, value: GpioValue) => void): void {
    if (FakeGpio.pollFails) throw new Error('Operation not permitted');
    this.callbacks.push(callback);
  }
  unwatchAll(): void {
    this.callbacks = [];
  }
  unexport(): void {
    this.unexported = true;
  }
  /** What onoff does after an interrupt (and after its debounce, if any): reports the value now. */
  interrupt(value: GpioValue): void {
    this.value = value;
    for (const cb of this.callbacks) cb(null, value);
  }
}

const fakeOnoff = async (): Promise<unknown> => ({ default: { Gpio: FakeGpio } });

let temp: Awaited<ReturnType<typeof makeTempDir>>;
let clock: VirtualClock;

beforeEach(async () => {
  temp = await makeTempDir('gpio-line');
  clock = new VirtualClock(1_000);
  FakeGpio.created = [];
  FakeGpio.failWith = undefined;
});
afterEach(async () => {
  await temp.remove();
});

describe('LinuxGpioController over onoff', () => {
  it('builds onoff Gpio with the resolved global number, edge, active-low and debounce', async () => {
    const root = await makeGpioTree(temp.dir, pi5Chips);
    const gpio = new LinuxGpioController({ clock, root, load: fakeOnoff });
    const line = await gpio.open({ chip: 'pinctrl-rp1', line: 'GPIO17', direction: 'in', activeLow: true, debounceMs: 20, edge: 'falling' });
    const made = FakeGpio.created[0];
    expect(made?.number).toBe(588);
    expect(made?.direction).toBe('in');
    // Always both edges underneath, so the adapter knows the level it last reported.
    expect(made?.edge).toBe('both');
    expect(made?.options).toEqual({ activeLow: true, debounceTimeout: 20 });
    expect(line.target).toBe('gpio:pinctrl-rp1/GPIO17');
    await gpio.close();
  });

  it('opens outputs at their initial logical level in one step, inverted for active-low', async () => {
    const root = await makeGpioTree(temp.dir, pi4Chips);
    const gpio = new LinuxGpioController({ clock, root, load: fakeOnoff });
    await gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO17', direction: 'out', initial: 1 });
    await gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO18', direction: 'out', initial: 1, activeLow: true });
    await gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO19', direction: 'out' });
    expect(FakeGpio.created.map((g) => [g.number, g.direction, g.edge])).toEqual([
      [529, 'high', undefined],
      [530, 'low', undefined],
      [531, 'low', undefined],
    ]);
    await gpio.close();
  });

  it('takes over the level of a line still exported as an output (a firmware restart), whatever the initial value says', async () => {
    const root = await makeGpioTree(temp.dir, pi4Chips);
    // As the previous run left them: GPIO22 an active-low relay switched on (logical 1, raw low), GPIO23 high.
    for (const [number, value, activeLow] of [[534, '1', '1'], [535, '1', '0']] as const) {
      await mkdir(join(root, `gpio${number}`));
      await writeFile(join(root, `gpio${number}`, 'direction'), 'out\n');
      await writeFile(join(root, `gpio${number}`, 'value'), `${value}\n`);
      await writeFile(join(root, `gpio${number}`, 'active_low'), `${activeLow}\n`);
    }
    const gpio = new LinuxGpioController({ clock, root, load: fakeOnoff });
    await gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO22', direction: 'out', activeLow: true, initial: 0 });
    await gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO23', direction: 'out', initial: 0 });
    // initial 0 would have been raw high on GPIO22 and low on GPIO23.
    expect(FakeGpio.created.map((g) => [g.number, g.direction])).toEqual([
      [534, 'low'],
      [535, 'high'],
    ]);
    await gpio.close();
  });

  it('names a line whose value file cannot be polled as unsupported for edges', async () => {
    const root = await makeGpioTree(temp.dir, pi4Chips);
    const gpio = new LinuxGpioController({ clock, root, load: fakeOnoff });
    const line = await gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO24', direction: 'in' });
    FakeGpio.pollFails = true;
    try {
      expect(() => line.watch(() => undefined)).toThrow(expect.objectContaining({ code: 'ERR_HAL_UNSUPPORTED', message: expect.stringContaining('cannot be polled') }));
    } finally {
      FakeGpio.pollFails = false;
    }
    await gpio.close();
  });

  it('reports each change once, filters edges logically and drops bounces that came back', async () => {
    const root = await makeGpioTree(temp.dir, pi4Chips);
    const gpio = new LinuxGpioController({ clock, root, load: fakeOnoff });
    const both = await gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO22', direction: 'in' });
    const rising = await gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO23', direction: 'in', edge: 'rising' });
    const [g22, g23] = FakeGpio.created;
    const seenBoth: Array<[GpioValue, number]> = [];
    const seenRising: GpioValue[] = [];
    both.watch((v, at) => seenBoth.push([v, at]));
    const stop = rising.watch((v) => seenRising.push(v));

    g22?.interrupt(1);
    await clock.advance(5);
    g22?.interrupt(1); // debounced bounce that settled where it was
    g22?.interrupt(0);
    expect(seenBoth).toEqual([
      [1, 1_000],
      [0, 1_005],
    ]);

    g23?.interrupt(1);
    g23?.interrupt(0);
    g23?.interrupt(1);
    expect(seenRising).toEqual([1, 1]);
    stop();
    g23?.interrupt(0);
    g23?.interrupt(1);
    expect(seenRising).toEqual([1, 1]);
    await gpio.close();
  });

  it('reads and writes through onoff, refuses writes to inputs and everything after close', async () => {
    const root = await makeGpioTree(temp.dir, pi4Chips);
    const gpio = new LinuxGpioController({ clock, root, load: fakeOnoff });
    const led = await gpio.open({ chip: 'pinctrl-bcm2711', line: 27, direction: 'out' });
    const button = await gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO26', direction: 'in' });
    await led.write(1);
    expect(FakeGpio.created[0]?.written).toEqual([1]);
    FakeGpio.created[1]?.interrupt(1);
    expect(await button.read()).toBe(1);
    expect((await rejection(button.write(0))).code).toBe('ERR_HAL_INVALID_ARG');

    await led.close();
    await led.close();
    // An output stays exported at its level, so a firmware restart does not drop it.
    expect(FakeGpio.created[0]?.unexported).toBe(false);
    const closed = await rejection(led.write(0));
    expect([closed.code, closed.canceled]).toEqual(['ERR_HAL_CLOSED', true]);
    await gpio.close();
    expect(FakeGpio.created[1]?.unexported).toBe(true);
    expect((await rejection(gpio.open({ chip: 'pinctrl-bcm2711', line: 5, direction: 'in' }))).code).toBe('ERR_HAL_CLOSED');
  });

  it('maps EACCES from the export to a permission error naming the gpio group, EBUSY to a line another consumer holds', async () => {
    const root = await makeGpioTree(temp.dir, pi4Chips);
    const gpio = new LinuxGpioController({ clock, root, load: fakeOnoff });
    FakeGpio.failWith = Object.assign(new Error("EACCES: permission denied, open '/sys/class/gpio/export'"), { code: 'EACCES' });
    const denied = await rejection(gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO17', direction: 'in' }));
    expect([denied.code, denied.errno]).toEqual(['ERR_HAL_PERMISSION', 'EACCES']);
    expect(denied.message).toContain('`gpio` group');
    expect(denied.message).toContain('sysfs GPIO 529');
    FakeGpio.failWith = Object.assign(new Error("EBUSY: resource busy or locked, write"), { code: 'EBUSY' });
    const busy = await rejection(gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO17', direction: 'in' }));
    expect([busy.code, busy.errno]).toEqual(['ERR_HAL_LINE_BUSY', 'EBUSY']);
    expect(busy.message).toContain('gpioinfo');
  });

  it('turns a missing onoff into ERR_HAL_UNSUPPORTED naming the package and the install command', async () => {
    const root = await makeGpioTree(temp.dir, pi4Chips);
    const gpio = new LinuxGpioController({ clock, root, load: importPackage('onoff-not-installed-here') });
    const err = await rejection(gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO17', direction: 'in' }));
    expect(err.code).toBe('ERR_HAL_UNSUPPORTED');
    expect(err.message).toContain('needs the optional package onoff');
    expect(err.message).toContain('npm install onoff');
    expect((err.cause as { code?: string }).code).toBe('ERR_MODULE_NOT_FOUND');
  });

  // On a board with sysfs GPIO this would export a real line, so it runs only where there is none.
  it.skipIf(existsSync('/sys/class/gpio'))('loads the real onoff lazily, on the first open', async () => {
    const root = await makeGpioTree(temp.dir, pi4Chips);
    let loaded: unknown;
    const gpio = new LinuxGpioController({
      clock,
      root,
      load: async () => (loaded = await importPackage('onoff')()),
    });
    expect(loaded).toBeUndefined();
    // The fake tree resolves the line; the real onoff then writes the real /sys/class/gpio/export,
    // which this machine does not have.
    const err = await rejection(gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO17', direction: 'in' }));
    expect(typeof (loaded as { Gpio?: unknown }).Gpio).toBe('function');
    expect(err.code).toBe('ERR_HAL_NOT_FOUND');
    expect(err.errno).toBe('ENOENT');
    expect(err.message).toContain('sysfs GPIO 529');
  });
});
