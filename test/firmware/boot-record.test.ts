/**
 * The boot record on its own: which boots count, why each began, what a damaged or unwritable record
 * does. The board clock is a virtual one; the files are real, in a directory of the test's own.
 */
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BootRecord, type BootRecordOptions, bootRecordFile } from '../../firmware/boot-record.js';
import type { BootIdentity } from '../../hal/boot.js';
import { readBootIdentity } from '../../hal/linux/boot.js';
import { VirtualClock } from '../../sim/clock.js';
import { logSink, silent } from '../helpers/log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), `handcheck-boot-${process.pid}-`));
  dirs.push(dir);
  return dir;
}

const clock = new VirtualClock(1_700_000_000_000);
let boots = 0;
/** A boot as Linux reports one: an id of its own, no word on power. */
function boot(): BootIdentity {
  boots += 1;
  return { id: `00000000-0000-4000-8000-${String(boots).padStart(12, '0')}`, bootedAt: clock.now() };
}

function open(dir: string, identity: BootIdentity, more: Partial<BootRecordOptions> = {}): Promise<BootRecord> {
  return BootRecord.open({ stateDir: dir, identity, resetByWatchdog: false, clock, logger: silent, ...more });
}

describe('boot record', () => {
  it('counts boots, not firmware restarts, and says why each boot began', async () => {
    const dir = stateDir();
    const first = boot();
    // No record yet, and Linux cannot tell a power-on from a panic: unknown.
    expect((await open(dir, first)).status()).toMatchObject({ count: 1, lastResetCause: 'unknown', id: first.id });
    // The firmware restarted within the same boot (a crash, systemctl restart): not a reboot.
    const restarted = await open(dir, first);
    expect(restarted.status()).toMatchObject({ count: 1, lastResetCause: 'unknown' });
    // It stopped in order (SIGTERM, as systemctl reboot does), and the board came back.
    await restarted.markOrderly();
    expect((await open(dir, boot())).status()).toMatchObject({ count: 2, lastResetCause: 'orderly' });
    // Gone without an orderly stop and without WDIOF_CARDRESET: a power cut looks like this on a Pi,
    // and so does its watchdog's reset. Unclean, unlike the first boot, which no record preceded.
    expect((await open(dir, boot())).status()).toMatchObject({ count: 3, lastResetCause: 'unknown', uncleanResets: 1 });
    // The watchdog driver's boot status has WDIOF_CARDRESET.
    expect((await open(dir, boot(), { resetByWatchdog: true })).status()).toMatchObject({ count: 4, lastResetCause: 'watchdog', uncleanResets: 2 });
    // A board that knows it was powered on (the sim board) says so.
    expect((await open(dir, { ...boot(), powerOn: true })).status()).toMatchObject({ count: 5, lastResetCause: 'power-on' });
    // Only the record is left: the temporary file was renamed over it.
    expect(readdirSync(dir)).toEqual([bootRecordFile]);
  });

  it('uptime follows the board clock from the boot time the board reports', async () => {
    const identity = boot();
    const record = await open(stateDir(), identity);
    await clock.advance(90_500);
    expect(record.status()).toMatchObject({ bootedAt: identity.bootedAt, uptimeS: 90 });
  });

  for (const [what, damage] of [
    ['truncated', (text: string) => text.slice(0, text.length / 2)],
    ['empty', () => ''],
    ['a field changed (checksum)', (text: string) => text.replace(/"bootCount":\d+/, '"bootCount":99')],
    ['a field of the wrong type', (text: string) => text.replace(/"bootCount":\d+/, '"bootCount":"many"')],
    ['not an object', () => '[1,2]'],
  ] as const) {
    it(`a record that is ${what} is reported as ERR_BOOT_RECORD_CORRUPT and a new count starts`, async () => {
      const dir = stateDir();
      await open(dir, boot());
      await open(dir, boot());
      const file = join(dir, bootRecordFile);
      writeFileSync(file, damage(readFileSync(file, 'utf8')));
      const log = logSink('warn');
      const record = await open(dir, boot(), { logger: log.logger });
      expect(record.status()).toMatchObject({ count: 1, lastResetCause: 'unknown' });
      expect(log.lines()).toContainEqual(expect.objectContaining({ code: 'ERR_BOOT_RECORD_CORRUPT', file, msg: expect.stringContaining('starting a new boot count') }));
      // Written afresh: the next boot counts on from it.
      expect((await open(dir, boot())).status()).toMatchObject({ count: 2 });
    });
  }

  it('a state directory that cannot be made gives ERR_BOOT_RECORD_IO and the firmware runs on', async () => {
    const parent = stateDir();
    writeFileSync(join(parent, 'file'), '');
    const log = logSink('warn');
    const record = await open(join(parent, 'file', 'state'), boot(), { logger: log.logger });
    expect(record.status()).toMatchObject({ count: 1 });
    expect(log.lines()).toContainEqual(expect.objectContaining({ code: 'ERR_BOOT_RECORD_IO', msg: expect.stringContaining('cannot write boot record') }));
  });

  it('a record that cannot be read (a directory in its place) gives ERR_BOOT_RECORD_IO and a new count', async () => {
    const dir = stateDir();
    mkdirSync(join(dir, bootRecordFile));
    const log = logSink('warn');
    expect((await open(dir, boot(), { logger: log.logger })).status()).toMatchObject({ count: 1 });
    expect(log.lines().filter((line) => line.code === 'ERR_BOOT_RECORD_IO').map((line) => line.msg)).toEqual([
      expect.stringContaining('cannot read boot record'),
      expect.stringContaining('cannot write boot record'),
    ]);
  });

  it('resetLoopCount unclean resets within resetLoopWindowS are a reset loop, which ends when the window holds fewer', async () => {
    const dir = stateDir();
    const resetLoop = { count: 3, windowS: 600 };
    let record = await open(dir, boot(), { resetLoop });
    for (let reset = 1; reset <= 3; reset++) {
      expect(record.resetLoop()).toBeUndefined();
      await clock.advance(60_000);
      // A Pi's watchdog reset reads as unknown (bcm2835_wdt sets no boot status): it counts the same.
      record = await open(dir, boot(), { resetByWatchdog: reset !== 2, resetLoop });
    }
    expect(record.status()).toMatchObject({ count: 4, uncleanResets: 3, resetLoop });
    expect(record.resetLoop()).toBe('reset loop: 3 unclean resets (the watchdog\'s or of unknown cause) within 600 s (limit 3)');
    // The first of the three leaves the window 600 s after it.
    await clock.advance(600_000 - 2 * 60_000);
    expect(record.resetLoop()).toBeUndefined();
    expect(record.status().uncleanResets).toBe(2);
  });
});

describe('Linux boot identity (procfs)', () => {
  it('is the kernel boot_id and /proc/stat btime', async () => {
    const root = stateDir();
    mkdirSync(join(root, 'sys/kernel/random'), { recursive: true });
    writeFileSync(join(root, 'sys/kernel/random/boot_id'), 'd6a1b3a0-3f52-4b57-9a5e-0c8f2f0f6a11\n');
    writeFileSync(join(root, 'stat'), 'cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1764460800\nprocesses 7\n');
    expect(await readBootIdentity(root)).toEqual({ id: 'd6a1b3a0-3f52-4b57-9a5e-0c8f2f0f6a11', bootedAt: 1_764_460_800_000 });
    writeFileSync(join(root, 'stat'), 'cpu  1 2 3 4\n');
    await expect(readBootIdentity(root)).rejects.toMatchObject({ code: 'ERR_HAL_IO', message: expect.stringContaining('no btime line') });
    rmSync(join(root, 'sys'), { recursive: true });
    await expect(readBootIdentity(root)).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });
  });

  it("this machine's: the same boot id on every read, booted in the past", async () => {
    const identity = await readBootIdentity();
    expect(identity.id).toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    expect((await readBootIdentity()).id).toBe(identity.id);
    expect(identity.bootedAt).toBeLessThan(Date.now());
  });
});
