/**
 * GPIO on a real gpiochip: gpio-sim (drivers/gpio/gpio-sim.c, built by the lane from linux-source)
 * configured through configfs as a chip labelled `handcheck-sim` with named lines. Both backends run
 * on it: the character device (hal/linux/gpio-cdev.ts, gpiolib-cdev.c) and onoff on sysfs
 * (gpiolib-sysfs.c, CONFIG_GPIO_SYSFS). A test drives an input from outside by its simulated pull
 * (sim_gpioN/pull) and reads an output's level from sim_gpioN/value.
 */
import { mkdir, readFile, readdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { systemClock } from '../../../hal/clock.js';
import type { GpioLine, GpioValue } from '../../../hal/gpio.js';
import { CdevGpioController } from '../../../hal/linux/gpio-cdev.js';
import { LinuxGpioController } from '../../../hal/linux/gpio.js';
import { rejection } from '../../helpers/rejection.js';
import { describeInLane } from '../in-guest.js';

const label = 'handcheck-sim';
const lineNames = ['power-good', 'relay', 'status-led', 'button'];
const configfs = '/sys/kernel/config/gpio-sim/handcheck';
let simDir: string;
let chipName: string;

beforeAll(async () => {
  await mkdir(join(configfs, 'bank0'), { recursive: true });
  await writeFile(join(configfs, 'bank0', 'label'), label);
  await writeFile(join(configfs, 'bank0', 'num_lines'), String(lineNames.length));
  for (const [offset, name] of lineNames.entries()) {
    await mkdir(join(configfs, 'bank0', `line${offset}`));
    await writeFile(join(configfs, 'bank0', `line${offset}`, 'name'), name);
  }
  await writeFile(join(configfs, 'live'), '1');
  const device = (await readFile(join(configfs, 'dev_name'), 'utf8')).trim();
  chipName = (await readFile(join(configfs, 'bank0', 'chip_name'), 'utf8')).trim();
  simDir = join('/sys/devices/platform', device, chipName);
});

afterAll(async () => {
  await writeFile(join(configfs, 'live'), '0');
  for (const offset of lineNames.keys()) await rmdir(join(configfs, 'bank0', `line${offset}`));
  await rmdir(join(configfs, 'bank0'));
  await rmdir(configfs);
});

/** Drives the simulated pin from outside, as a wire would. */
function pull(offset: number, level: GpioValue): Promise<void> {
  return writeFile(join(simDir, `sim_gpio${offset}`, 'pull'), level ? 'pull-up' : 'pull-down');
}

async function level(offset: number): Promise<string> {
  return (await readFile(join(simDir, `sim_gpio${offset}`, 'value'), 'utf8')).trim();
}

/** The next value a watcher hears. */
function nextEdge(line: GpioLine): Promise<GpioValue> {
  return new Promise((resolve) => {
    const stop = line.watch((value) => {
      stop();
      resolve(value);
    });
  });
}

describeInLane('GPIO character device on gpio-sim', () => {
  it('finds the chip by label and lines by their kernel names, reads inputs and hears edges from the line fd', async () => {
    const gpio = new CdevGpioController({ clock: systemClock });
    try {
      await pull(0, 0);
      const pg = await gpio.open({ chip: label, line: 'power-good', direction: 'in' });
      expect(pg.target).toBe(`gpio:${label}/power-good`);
      expect(await pg.read()).toBe(0);
      const rising = nextEdge(pg);
      await pull(0, 1);
      expect(await rising).toBe(1);
      expect(await pg.read()).toBe(1);
      const falling = nextEdge(pg);
      await pull(0, 0);
      expect(await falling).toBe(0);

      // Active-low: values and edges are logical.
      await pull(3, 1);
      const button = await gpio.open({ chip: label, line: 'button', direction: 'in', activeLow: true, edge: 'rising' });
      expect(await button.read()).toBe(0);
      const pressed = nextEdge(button);
      await pull(3, 0);
      expect(await pressed).toBe(1);
    } finally {
      await gpio.close();
    }
  });

  it('drives outputs, refuses a line another consumer holds (EBUSY), and names what exists when a line does not', async () => {
    const gpio = new CdevGpioController({ clock: systemClock });
    const other = new CdevGpioController({ clock: systemClock });
    try {
      const led = await gpio.open({ chip: label, line: 'status-led', direction: 'out', initial: 1 });
      expect(await level(2)).toBe('1');
      await led.write(0);
      expect(await level(2)).toBe('0');
      const busy = await rejection(other.open({ chip: label, line: 'status-led', direction: 'out' }));
      // gpiod_request_commit (drivers/gpio/gpiolib.c): EBUSY while FLAG_REQUESTED; the error names the holder from the line info.
      expect([busy.code, busy.errno]).toEqual(['ERR_HAL_LINE_BUSY', 'EBUSY']);
      expect(busy.message).toContain('consumer "handcheck"');
      const missing = await rejection(gpio.open({ chip: label, line: 'GPIO17', direction: 'in' }));
      expect(missing.code).toBe('ERR_HAL_NOT_FOUND');
      expect(missing.message).toContain('line names: power-good, relay, status-led, button');
      const chip = await rejection(gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO17', direction: 'in' }));
      expect(chip.message).toContain(`chips seen: ${label}`);
    } finally {
      await other.close();
      await gpio.close();
    }
  });

  it('a reopened output keeps the level it has instead of driving its initial value (a firmware restart)', async () => {
    const first = new CdevGpioController({ clock: systemClock });
    const relay = await first.open({ chip: label, line: 'relay', direction: 'out', initial: 0 });
    await relay.write(1);
    // gpio-sim returns a released line to its pull (gpio_sim_free); pulled up, it holds 1 as a Pi's
    // pin controller holds an output level.
    await pull(1, 1);
    await first.close();
    expect(await level(1)).toBe('1');
    const restarted = new CdevGpioController({ clock: systemClock });
    try {
      const again = await restarted.open({ chip: label, line: 'relay', direction: 'out', initial: 0 });
      expect(await level(1)).toBe('1');
      expect(await again.read()).toBe(1);
      await again.write(0);
      expect(await level(1)).toBe('0');
    } finally {
      await restarted.close();
    }
  });
});

describeInLane('onoff on the same gpio-sim chip through sysfs', () => {
  it('exports by label and offset, reads, writes, and hears edges through the value file (a real sysfs, with interrupts)', async () => {
    const gpio = new LinuxGpioController({ clock: systemClock });
    try {
      await pull(0, 0);
      const pg = await gpio.open({ chip: label, line: 0, direction: 'in' });
      expect(await pg.read()).toBe(0);
      const rising = nextEdge(pg);
      await pull(0, 1);
      expect(await rising).toBe(1);
      const led = await gpio.open({ chip: label, line: 2, direction: 'out', initial: 1 });
      expect(await level(2)).toBe('1');
      await led.write(0);
      expect(await level(2)).toBe('0');
    } finally {
      await gpio.close();
    }
    // The input went back to the kernel; the output stays exported at its level.
    const base = await sysfsBase();
    expect([await exported(base), await exported(base + 2)]).toEqual([false, true]);
    await writeFile('/sys/class/gpio/unexport', String(base + 2));
  });
});

/** sysfs names the chip gpiochip<base>, not the character device's name. */
async function sysfsBase(): Promise<number> {
  for (const entry of await readdir('/sys/class/gpio')) {
    if (!entry.startsWith('gpiochip')) continue;
    if ((await readFile(join('/sys/class/gpio', entry, 'label'), 'utf8')).trim() === label) return Number(entry.slice('gpiochip'.length));
  }
  throw new Error(`no ${label} in /sys/class/gpio`);
}

function exported(number: number): Promise<boolean> {
  return readFile(`/sys/class/gpio/gpio${number}/direction`).then(
    () => true,
    () => false,
  );
}
