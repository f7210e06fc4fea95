/**
 * Runs inside `unshare -m` (a private mount namespace, as root) for gpio-namespace.test.ts: binds a
 * fake sysfs tree over /sys/class and /sys/devices, so that the real onoff - which hard-codes
 * /sys/class/gpio - and the label/base lookup both read it at the real paths, then drives
 * LinuxGpioController through a fixed script and prints what it observed as one JSON object.
 *
 *   unshare -m --propagation private node --import tsx gpio-namespace-body.ts '{"tree":"/tmp/...","layout":"pi4"}'
 *
 * The test process plays the kernel's export side on the other end of the export FIFO.
 */
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from '../../hal/clock.js';
import type { GpioLineSpec } from '../../hal/gpio.js';
import { listGpioChips } from '../../hal/linux/gpio-chips.js';
import { LinuxGpioController } from '../../hal/linux/gpio.js';

const { tree, layout } = JSON.parse(process.argv[2] ?? '{}') as { tree: string; layout: 'pi4' | 'pi5' };
execFileSync('mount', ['--bind', join(tree, 'class'), '/sys/class']);
execFileSync('mount', ['--bind', join(tree, 'devices'), '/sys/devices']);

const sys = '/sys/class/gpio';
const attribute = async (n: number, name: string): Promise<string> => (await readFile(join(sys, `gpio${n}`, name), 'utf8')).trim();
const attributes = async (n: number): Promise<Record<string, string>> => ({
  direction: await attribute(n, 'direction'),
  edge: await attribute(n, 'edge'),
  active_low: await attribute(n, 'active_low'),
  value: await attribute(n, 'value'),
});
const errorOf = async (promise: Promise<unknown>): Promise<{ code?: string; message: string } | undefined> =>
  promise.then(
    () => undefined,
    (err: { code?: string; message: string }) => ({ code: err.code, message: err.message }),
  );

const chip = layout === 'pi4' ? 'pinctrl-bcm2711' : 'pinctrl-rp1';
const out: Record<string, unknown> = {};
const gpio = new LinuxGpioController({ clock: systemClock });

out.chips = (await listGpioChips()).map((c) => `${c.label}@${c.base}/${c.ngpio}`);

// An input as boards.json declares power-good: GPIO17, both edges, 5 ms debounce.
const input: GpioLineSpec = { chip, line: 'GPIO17', direction: 'in', edge: 'both', debounceMs: 5 };
const pg = await gpio.open(input);
const pgNumber = layout === 'pi4' ? 529 : 588;
out.input = await attributes(pgNumber);
// The pin's level as the kernel would show it in `value`; the line reads it back through onoff's fd.
await writeFile(join(sys, `gpio${pgNumber}`, 'value'), '1\n');
const high = await pg.read();
await writeFile(join(sys, `gpio${pgNumber}`, 'value'), '0\n');
const low = await pg.read();
out.inputReads = [high, low];
out.writeToInput = await errorOf(pg.write(1));

// status-led: an output starting low; then an active-low relay that must start logically on.
const led = await gpio.open({ chip, line: 'GPIO27', direction: 'out', initial: 0 });
const ledNumber = layout === 'pi4' ? 539 : 598;
out.outputOpened = await attributes(ledNumber);
await led.write(1);
const afterOne = await attribute(ledNumber, 'value');
await led.write(0);
out.outputWrites = [afterOne, await attribute(ledNumber, 'value')];
const relay = await gpio.open({ chip, line: 'GPIO22', direction: 'out', initial: 1, activeLow: true });
out.activeLowOutput = await attributes(layout === 'pi4' ? 534 : 593);
await relay.close();

if (layout === 'pi4') {
  // A line by its device-tree name: SDA1 is offset 2 on the Pi 4.
  const sda = await gpio.open({ chip, line: 'SDA1', direction: 'in', edge: 'none' });
  out.byDeviceTreeName = { exported: await attribute(514, 'direction'), target: sda.target };
  await sda.close();
}

out.missingLine = await errorOf(gpio.open({ chip, line: 'GPIO99', direction: 'in' }));
out.wrongChip = await errorOf(gpio.open({ chip: layout === 'pi4' ? 'pinctrl-rp1' : 'pinctrl-bcm2711', line: 'GPIO17', direction: 'in' }));

await pg.close();
out.unexportAfterInputClose = (await readFile(join(sys, 'unexport'), 'utf8')).trim();
out.readAfterClose = await errorOf(pg.read());
await gpio.close();
out.unexportAfterControllerClose = (await readFile(join(sys, 'unexport'), 'utf8')).trim();
out.openAfterClose = await errorOf(gpio.open(input));

process.stdout.write(`${JSON.stringify(out)}\n`);
