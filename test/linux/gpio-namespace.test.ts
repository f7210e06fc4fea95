/**
 * GPIO through the real onoff package (and its epoll addon) against a sysfs tree laid out by the test
 * and bound over /sys/class and /sys/devices in a private mount namespace, so both onoff's hard-coded
 * /sys/class/gpio paths and the chip label/base lookup read it where they would on a Pi. The host's
 * /sys is untouched: the mounts live and die with the namespace of the child process.
 *
 * The kernel's side is played here: `export` is a FIFO this process reads, and each number written to
 * it becomes a gpioN directory with the attributes the kernel creates. `unexport` is a plain file.
 *
 * Covered: chip lookup by label for a Pi 4 (base 512) and a Pi 5 (pinctrl-rp1 at base 571) layout, by
 * BCM name and by device-tree line name; onoff's export handshake (it polls until the kernel has made
 * gpioN); what onoff writes to direction/edge/active_low when lines open (outputs set direction and
 * level in one write); reading a level back from `value`; writing a level; unexport on close.
 * Not covered: edge interrupts. onoff waits for them with epoll (EPOLLPRI on the value fd), which only
 * a real sysfs attribute raises; epoll refuses regular files (EPERM), so watch() is not exercised
 * here, and neither is debouncing nor the kernel's own active_low inversion of `value`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { type FakeChip, makeGpioTree, makeTempDir, pi4Chips, pi5Chips } from './fake-sysfs.js';
import { describeAsRoot } from './root.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BODY = fileURLToPath(new URL('./gpio-namespace-body.js', import.meta.url));

/** The export half of the kernel's sysfs GPIO class, on the far end of a FIFO. */
class FakeGpioKernel {
  readonly exported: number[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(private readonly classDir: string) {
    execFileSync('mkfifo', [join(classDir, 'export')]);
    this.loop = this.serve();
  }

  private async serve(): Promise<void> {
    while (!this.stopped) {
      // One open-write-close by onoff is one read to EOF here; onoff does not write again before the
      // directory of the last export exists, so two numbers never share a read.
      const text = (await readFile(join(this.classDir, 'export'), 'utf8')).trim();
      if (text === '') continue;
      const number = Number(text);
      this.exported.push(number);
      // Made aside and renamed, so onoff's polling never sees a half-made directory.
      const staging = join(this.classDir, `.gpio${number}`);
      await mkdir(staging);
      for (const [name, value] of Object.entries({ value: '0', direction: 'in', edge: 'none', active_low: '0' })) {
        await writeFile(join(staging, name), `${value}\n`);
      }
      await rename(staging, join(this.classDir, `gpio${number}`));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // Wake a read blocked in open(); non-blocking, so it fails (ENXIO) instead of hanging when none is.
    for (;;) {
      const handle = await open(join(this.classDir, 'export'), constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined);
      await handle?.close();
      const done = await Promise.race([this.loop.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20))]);
      if (done) return;
    }
  }
}

let temp: Awaited<ReturnType<typeof makeTempDir>>;
beforeEach(async () => {
  temp = await makeTempDir('gpio-ns');
});
afterEach(async () => {
  await temp.remove();
});

async function runInNamespace(chips: FakeChip[], layout: 'pi4' | 'pi5'): Promise<{ result: Record<string, unknown>; exported: number[] }> {
  const classDir = await makeGpioTree(temp.dir, chips);
  await rm(join(classDir, 'export'));
  const kernel = new FakeGpioKernel(classDir);
  try {
    const child = spawn('unshare', ['-m', '--propagation', 'private', process.execPath, '--import', 'tsx', BODY, JSON.stringify({ tree: temp.dir, layout })], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`namespace body exited with ${code}: ${stderr}`);
    return { result: JSON.parse(stdout) as Record<string, unknown>, exported: kernel.exported };
  } finally {
    await kernel.stop();
  }
}

describeAsRoot('onoff against a sysfs tree in a private mount namespace', 'binding a fake sysfs over /sys', ['unshare', 'mount', 'mkfifo'], () => {
  it('Pi 4: finds pinctrl-bcm2711 at base 512, exports through onoff, reads and writes levels, unexports inputs on close', async () => {
    const { result, exported } = await runInNamespace(pi4Chips, 'pi4');
    expect(result.chips).toEqual(['pinctrl-bcm2711@512/58', 'raspberrypi-exp-gpio@570/8']);
    // power-good, status-led, relay, SDA1: exported in that order, by global number.
    expect(exported).toEqual([529, 539, 534, 514]);
    expect(result.input).toEqual({ direction: 'in', edge: 'both', active_low: '0', value: '0' });
    expect(result.inputReads).toEqual([1, 0]);
    expect(result.writeToInput).toMatchObject({ code: 'ERR_HAL_INVALID_ARG' });
    // 'low' sets direction out and the level in one write, so the LED never flashes on.
    expect(result.outputOpened).toEqual({ direction: 'low', edge: 'none', active_low: '0', value: '0' });
    expect(result.outputWrites).toEqual(['1', '0']);
    // Logical 1 on an active-low line is the raw level low.
    expect(result.activeLowOutput).toMatchObject({ direction: 'low', active_low: '1' });
    expect(result.byDeviceTreeName).toEqual({ exported: 'in', target: 'gpio:pinctrl-bcm2711/SDA1' });
    expect(result.missingLine).toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });
    expect((result.missingLine as { message: string }).message).toContain('offset 99 is out of range for chip pinctrl-bcm2711 (gpiochip512, ngpio 58');
    expect(result.wrongChip).toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });
    expect((result.wrongChip as { message: string }).message).toContain('no GPIO chip labelled pinctrl-rp1');
    expect(result.unexportAfterInputClose).toBe('529');
    expect(result.readAfterClose).toMatchObject({ code: 'ERR_HAL_CLOSED' });
    // The controller closes what is still open: only the LED, an output, which stays exported.
    expect(result.unexportAfterControllerClose).toBe('529');
    expect(result.openAfterClose).toMatchObject({ code: 'ERR_HAL_CLOSED' });
  });

  it('Pi 5: finds pinctrl-rp1 at base 571 among the gpio-brcmstb chips, with no device-tree names', async () => {
    const { result, exported } = await runInNamespace(pi5Chips, 'pi5');
    expect(result.chips).toEqual([
      'gpio-brcmstb@107d508500@512/32',
      'gpio-brcmstb@107d508520@544/4',
      'gpio-brcmstb@107d517c00@548/17',
      'gpio-brcmstb@107d517c20@565/6',
      'pinctrl-rp1@571/54',
    ]);
    expect(exported).toEqual([588, 598, 593]);
    expect(result.inputReads).toEqual([1, 0]);
    expect(result.outputWrites).toEqual(['1', '0']);
    expect((result.missingLine as { message: string }).message).toContain('offset 99 is out of range for chip pinctrl-rp1 (gpiochip571, ngpio 54');
    expect((result.wrongChip as { message: string }).message).toContain('no GPIO chip labelled pinctrl-bcm2711');
    expect(result.unexportAfterInputClose).toBe('588');
  });
});
