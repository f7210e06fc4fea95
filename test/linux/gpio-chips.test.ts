import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listGpioChips, resolveGpioLine } from '../../hal/linux/gpio-chips.js';
import { makeGpioTree, makeTempDir, pi4Chips, pi4LineNames, pi5Chips } from './fake-sysfs.js';
import { rejection } from '../helpers/rejection.js';

let temp: Awaited<ReturnType<typeof makeTempDir>>;

beforeEach(async () => {
  temp = await makeTempDir('gpio');
});
afterEach(async () => {
  await temp.remove();
});

describe('GPIO chip lookup in sysfs', () => {
  it('lists a Pi 4 tree by base with labels, sizes and device tree line names', async () => {
    const root = await makeGpioTree(temp.dir, pi4Chips);
    const chips = await listGpioChips(root);
    expect(chips.map((c) => [c.name, c.label, c.base, c.ngpio])).toEqual([
      ['gpiochip512', 'pinctrl-bcm2711', 512, 58],
      ['gpiochip570', 'raspberrypi-exp-gpio', 570, 8],
    ]);
    expect(pi4LineNames).toHaveLength(58);
    expect(chips[0]?.lineNames).toEqual(pi4LineNames);
    expect(chips[1]?.lineNames).toBeUndefined();
  });

  it('resolves GPIO17 to 529 on a Pi 4 (kernel 6.6, base 512), by name and by offset', async () => {
    const root = await makeGpioTree(temp.dir, pi4Chips);
    expect((await resolveGpioLine({ chip: 'pinctrl-bcm2711', line: 'GPIO17' }, root)).number).toBe(529);
    expect((await resolveGpioLine({ chip: 'pinctrl-bcm2711', line: 17 }, root)).number).toBe(529);
    // Device tree names by function, and BCM numbers where the tree uses a function name.
    const ce0 = await resolveGpioLine({ chip: 'pinctrl-bcm2711', line: 'SPI_CE0_N' }, root);
    expect([ce0.offset, ce0.number]).toEqual([8, 520]);
    expect((await resolveGpioLine({ chip: 'pinctrl-bcm2711', line: 'GPIO2' }, root)).number).toBe(514);
    const led = await resolveGpioLine({ chip: 'raspberrypi-exp-gpio', line: 2 }, root);
    expect([led.chip.name, led.number]).toEqual(['gpiochip570', 572]);
  });

  it('resolves GPIO17 to 588 on a Pi 5 (pinctrl-rp1, base 571) without device tree names', async () => {
    const root = await makeGpioTree(temp.dir, pi5Chips);
    const line = await resolveGpioLine({ chip: 'pinctrl-rp1', line: 'GPIO17' }, root);
    expect([line.chip.name, line.offset, line.number]).toEqual(['gpiochip571', 17, 588]);
    expect((await resolveGpioLine({ chip: 'gpio-brcmstb@107d517c00', line: 3 }, root)).number).toBe(551);
  });

  it('rejects an unknown label, listing the labels it saw', async () => {
    const root = await makeGpioTree(temp.dir, pi5Chips);
    const err = await rejection(resolveGpioLine({ chip: 'pinctrl-bcm2711', line: 'GPIO17' }, root));
    expect(err.code).toBe('ERR_HAL_NOT_FOUND');
    expect(err.target).toBe('pinctrl-bcm2711/GPIO17');
    expect(err.message).toContain('no GPIO chip labelled pinctrl-bcm2711');
    for (const chip of pi5Chips) expect(err.message).toContain(chip.label);
  });

  it('rejects an offset at or past ngpio, and names that do not exist', async () => {
    const root = await makeGpioTree(temp.dir, pi4Chips);
    const past = await rejection(resolveGpioLine({ chip: 'pinctrl-bcm2711', line: 58 }, root));
    expect(past.code).toBe('ERR_HAL_NOT_FOUND');
    expect(past.message).toContain('ngpio 58: offsets 0-57');
    const byName = await rejection(resolveGpioLine({ chip: 'pinctrl-bcm2711', line: 'GPIO58' }, root));
    expect(byName.code).toBe('ERR_HAL_NOT_FOUND');
    const unknown = await rejection(resolveGpioLine({ chip: 'pinctrl-bcm2711', line: 'STATUS_LED' }, root));
    expect(unknown.message).toContain('no line named STATUS_LED');
    const negative = await rejection(resolveGpioLine({ chip: 'pinctrl-bcm2711', line: -1 }, root));
    expect(negative.code).toBe('ERR_HAL_INVALID_ARG');
  });

  it('applies the GPIO<n> rule only to Raspberry Pi pin controllers', async () => {
    const root = await makeGpioTree(temp.dir, pi5Chips);
    const err = await rejection(resolveGpioLine({ chip: 'gpio-brcmstb@107d508500', line: 'GPIO5' }, root));
    expect(err.code).toBe('ERR_HAL_NOT_FOUND');
    expect(err.message).toContain('exposes no line names');
  });

  it('reports a missing /sys/class/gpio as sysfs GPIO not enabled', async () => {
    const err = await rejection(resolveGpioLine({ chip: 'pinctrl-bcm2711', line: 17 }, join(temp.dir, 'class', 'gpio')));
    expect(err.code).toBe('ERR_HAL_UNSUPPORTED');
    expect(err.message).toContain('CONFIG_GPIO_SYSFS');
  });
});
