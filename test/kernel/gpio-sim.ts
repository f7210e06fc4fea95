/**
 * gpio-sim (drivers/gpio/gpio-sim.c) as an out-of-tree module for the lane's kernel: Debian's kernel
 * has neither it nor CONFIG_IRQ_SIM, so both sources come from Debian's linux-source package and are
 * linked into one module against the kernel's headers package. irq_sim.c calls irq_to_desc(), which
 * the kernel does not export to modules; generic_handle_irq_safe() is the exported way to run the
 * same simple-irq handler from its irq_work. Built once per kernel release, kept in the lane's cache.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LaneSetupError } from './initramfs.js';

function run(command: string, args: string[], what: string): void {
  try {
    execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-8).join('\n') ?? '';
    throw new LaneSetupError(`${what} failed: ${(err as Error).message}\n${stderr}`);
  }
}

/** The path of gpio-sim.ko for `release` (6.12.117+deb12-amd64), building it when the cache has none. */
export function buildGpioSim(release: string, cacheDir: string): string {
  const dir = join(cacheDir, release);
  const module = join(dir, 'gpio-sim.ko');
  if (existsSync(module)) return module;
  const series = /^(\d+\.\d+)/.exec(release)?.[1] ?? '';
  const tarball = `/usr/src/linux-source-${series}.tar.xz`;
  const headers = `/lib/modules/${release}/build`;
  const missing: string[] = [];
  if (!existsSync(tarball)) missing.push(`${tarball} (Debian package linux-source-${series})`);
  if (!existsSync(join(headers, 'Makefile'))) missing.push(`${headers} (Debian package linux-headers-${release})`);
  for (const tool of ['make', 'gcc']) if (!existsSync(`/usr/bin/${tool}`)) missing.push(`${tool} (Debian package build-essential)`);
  if (missing.length > 0) throw new LaneSetupError(`building gpio-sim for the kernel lane needs ${missing.join(', ')}`);

  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const top = `linux-source-${series}`;
  const sources = { 'gpio-sim-core.c': `${top}/drivers/gpio/gpio-sim.c`, 'irq-sim.c': `${top}/kernel/irq/irq_sim.c` };
  run('tar', ['-xJf', tarball, '-C', dir, ...Object.values(sources)], `extracting gpio-sim from ${tarball}`);
  for (const [name, member] of Object.entries(sources)) copyFileSync(join(dir, member), join(dir, name));
  rmSync(join(dir, top), { recursive: true });
  const irqSim = join(dir, 'irq-sim.c');
  writeFileSync(irqSim, readFileSync(irqSim, 'utf8').replace('handle_simple_irq(irq_to_desc(irqnum));', 'generic_handle_irq_safe(irqnum);'));
  writeFileSync(join(dir, 'Kbuild'), 'obj-m += gpio-sim.o\ngpio-sim-y := gpio-sim-core.o irq-sim.o\n');
  run('make', ['-C', headers, `M=${dir}`, 'modules'], `building gpio-sim against ${headers}`);
  if (!existsSync(module)) throw new LaneSetupError(`building gpio-sim produced no ${module}`);
  return module;
}
