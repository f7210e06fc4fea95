import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LinuxWatchdog, watchdogSysfsName } from '../../hal/linux/watchdog.js';
import { makeTempDir } from './fake-sysfs.js';
import { rejection } from '../helpers/rejection.js';

let temp: Awaited<ReturnType<typeof makeTempDir>>;
let sysfs: string;

/** A Raspberry Pi's BCM2835 watchdog as /sys/class/watchdog shows it (timeout clamps near 15 s). */
async function fakeWatchdogClass(name: string, attributes: Record<string, string>): Promise<void> {
  await mkdir(join(sysfs, name), { recursive: true });
  for (const [file, value] of Object.entries(attributes)) await writeFile(join(sysfs, name, file), `${value}\n`);
}

const bcm2835 = { identity: 'Broadcom BCM2835 Watchdog timer', timeout: '15', timeleft: '14' };

beforeEach(async () => {
  temp = await makeTempDir('watchdog');
  sysfs = join(temp.dir, 'class', 'watchdog');
});
afterEach(async () => {
  await temp.remove();
});

describe('LinuxWatchdog', () => {
  it('maps device paths to their sysfs watchdog', () => {
    expect(watchdogSysfsName('/dev/watchdog')).toBe('watchdog0');
    expect(watchdogSysfsName('/dev/watchdog1')).toBe('watchdog1');
  });

  it('arms on open, kicks with a write, and writes V before a magic close (regular file)', async () => {
    await fakeWatchdogClass('watchdog0', bcm2835);
    const device = join(temp.dir, 'watchdog');
    await writeFile(device, '');
    const wd = new LinuxWatchdog(device, { sysfsRoot: sysfs });
    // A regular file answers the watchdog ioctls with ENOTTY: the backend falls back to sysfs.
    expect(await wd.open()).toEqual({ identity: 'Broadcom BCM2835 Watchdog timer', timeoutS: 15 });
    expect(await wd.open()).toEqual({ identity: 'Broadcom BCM2835 Watchdog timer', timeoutS: 15 });
    await wd.kick();
    await wd.kick();
    await wd.kick();
    expect(await wd.timeLeft()).toBe(14);
    await wd.close({ magic: true });
    await wd.close({ magic: true });
    expect(await readFile(device)).toEqual(Buffer.from('\0\0\0V'));
    const closed = await rejection(wd.kick());
    expect([closed.code, closed.canceled]).toEqual(['ERR_HAL_CLOSED', true]);
  });

  it('leaves the watchdog armed on a plain close: no V is written', async () => {
    await fakeWatchdogClass('watchdog1', { ...bcm2835, timeout: '10' });
    const device = join(temp.dir, 'watchdog1');
    await writeFile(device, '');
    const wd = new LinuxWatchdog(device, { sysfsRoot: sysfs });
    const notOpen = await rejection(wd.kick());
    expect([notOpen.code, notOpen.canceled]).toEqual(['ERR_HAL_CLOSED', false]);
    expect((await wd.open()).timeoutS).toBe(10);
    await wd.kick();
    await wd.close();
    expect(await readFile(device)).toEqual(Buffer.of(0));
    // Reopening after close re-arms, as a restarted firmware does.
    await writeFile(device, '');
    await wd.open();
    await wd.kick();
    await wd.close({ magic: true });
    expect(await readFile(device)).toEqual(Buffer.from('\0V'));
  });

  it('delivers kicks and the magic V through a FIFO to a reading process', async () => {
    await fakeWatchdogClass('watchdog0', bcm2835);
    const fifo = join(temp.dir, 'watchdog');
    execFileSync('mkfifo', [fifo]);
    const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    reader.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    const exited = new Promise<number | null>((resolve) => reader.once('exit', resolve));
    const wd = new LinuxWatchdog(fifo, { sysfsRoot: sysfs });
    await wd.open();
    await wd.kick();
    await wd.kick();
    await wd.close({ magic: true });
    expect(await exited).toBe(0);
    expect(Buffer.concat(chunks)).toEqual(Buffer.from('\0\0V'));
  });

  it('without the ioctl addon: accepts only the timeout already in force, and says the ioctl is missing otherwise', async () => {
    await fakeWatchdogClass('watchdog0', bcm2835);
    const wd = new LinuxWatchdog(join(temp.dir, 'watchdog'), { sysfsRoot: sysfs, ioctl: null });
    expect(await wd.getTimeout()).toBe(15);
    expect(await wd.setTimeout(15)).toBe(15);
    const err = await rejection(wd.setTimeout(30));
    expect(err.code).toBe('ERR_HAL_UNSUPPORTED');
    expect(err.message).toContain('WDIOC_SETTIMEOUT');
    expect(err.message).toContain('in force is 15 s');
  });

  it('without the ioctl addon: reports a driver without time left as unsupported', async () => {
    const { timeleft: _omitted, ...withoutTimeleft } = bcm2835;
    await fakeWatchdogClass('watchdog0', withoutTimeleft);
    const wd = new LinuxWatchdog(join(temp.dir, 'watchdog'), { sysfsRoot: sysfs, ioctl: null });
    const err = await rejection(wd.timeLeft());
    expect(err.code).toBe('ERR_HAL_UNSUPPORTED');
    expect(err.message).toContain('WDIOC_GETTIMELEFT');
  });

  it('without the ioctl addon: fails before arming when sysfs has no watchdog attributes', async () => {
    const fifo = join(temp.dir, 'watchdog');
    execFileSync('mkfifo', [fifo]);
    const wd = new LinuxWatchdog(fifo, { sysfsRoot: sysfs, ioctl: null });
    // Opening a FIFO for writing with no reader would block: the rejection shows the device was never opened.
    const err = await rejection(wd.open());
    expect(err.code).toBe('ERR_HAL_UNSUPPORTED');
    expect(err.message).toContain('CONFIG_WATCHDOG_SYSFS');
    await rm(fifo);
  });

  it("without the ioctl addon: reads the boot status from sysfs where the kernel has it", async () => {
    await fakeWatchdogClass('watchdog0', { ...bcm2835, bootstatus: '32' });
    const device = join(temp.dir, 'watchdog');
    await writeFile(device, '');
    const wd = new LinuxWatchdog(device, { sysfsRoot: sysfs, ioctl: null });
    expect(await wd.open()).toEqual({ identity: 'Broadcom BCM2835 Watchdog timer', timeoutS: 15, bootStatus: 32 });
    await wd.close({ magic: true });
  });

  it('does not create a missing device', async () => {
    await fakeWatchdogClass('watchdog0', bcm2835);
    const device = join(temp.dir, 'watchdog');
    const wd = new LinuxWatchdog(device, { sysfsRoot: sysfs });
    const err = await rejection(wd.open());
    expect([err.code, err.errno, err.target]).toEqual(['ERR_HAL_NOT_FOUND', 'ENOENT', `watchdog:${device}`]);
    expect(existsSync(device)).toBe(false);
  });
});
