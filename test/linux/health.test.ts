/**
 * The Linux health readings (hal/linux/health.ts) against fake sysfs/procfs trees laid out the way
 * the kernel lays them out, and, where this machine has them, against the real files.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NTP_PHASE_LIMIT_US, STA_CLOCKERR, STA_PLL, STA_UNSYNC, TIME_ERROR, TIME_OK } from '../../hal/health.js';
import { LinuxHealth, lifeTimeUsedPct } from '../../hal/linux/health.js';
import { ioctlAddon } from '../../hal/linux/ioctl.js';
import { program } from '../helpers/processes.js';
import { requireOrSkip } from '../helpers/requirements.js';
import { rejection } from '../helpers/rejection.js';
import { describeAsRoot } from './root.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'handcheck-health-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function put(path: string, text: string): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), text);
}

const space = { blocks: 1000, bfree: 300, bavail: 250 };

describe('power', () => {
  it('reads under-voltage from the rpi_volt hwmon in0_lcrit_alarm (drivers/hwmon/raspberrypi-hwmon.c, rpi_read)', async () => {
    await put('sys/class/hwmon/hwmon0/name', 'cpu_thermal\n');
    await put('sys/class/hwmon/hwmon1/name', 'rpi_volt\n');
    await put('sys/class/hwmon/hwmon1/in0_lcrit_alarm', '1\n');
    const status = await new LinuxHealth({ root }).power();
    expect(status.underVoltage).toBe(true);
    expect(status.throttled).toBeUndefined();
    expect(status.source).toContain('hwmon1/in0_lcrit_alarm');
  });

  it('decodes get_throttled (bits 0-3 now, 16-19 occurred; Raspberry Pi documentation, vcgencmd get_throttled)', async () => {
    await put('sys/devices/platform/soc/soc:firmware/get_throttled', '50005\n');
    const status = await new LinuxHealth({ root }).power();
    expect(status).toMatchObject({ underVoltage: true, throttled: true, frequencyCapped: false, underVoltageOccurred: true, throttlingOccurred: true, throttledBits: 0x50005 });
  });

  it('does not trust the occurred bits where rpi_volt is bound: it clears them every 2 s (rpi_firmware_get_throttled requests 0xffff)', async () => {
    await put('sys/class/hwmon/hwmon0/name', 'rpi_volt\n');
    await put('sys/class/hwmon/hwmon0/in0_lcrit_alarm', '0\n');
    await put('sys/devices/platform/soc/soc:firmware/get_throttled', '0x40000\n');
    const status = await new LinuxHealth({ root }).power();
    expect(status.underVoltage).toBe(false);
    expect(status.throttled).toBe(false);
    expect(status.underVoltageOccurred).toBeUndefined();
    expect(status.throttlingOccurred).toBeUndefined();
  });

  it('names both sources when neither exists', async () => {
    const err = await rejection(new LinuxHealth({ root }).power());
    expect(err.code).toBe('ERR_HAL_NOT_FOUND');
    expect(err.message).toMatch(/rpi_volt.*get_throttled/);
  });
});

describe('SoC temperature', () => {
  it('reads temp and trip points in millidegrees (Documentation/driver-api/thermal/sysfs-api.rst)', async () => {
    await put('sys/class/thermal/thermal_zone0/type', 'cpu-thermal\n');
    await put('sys/class/thermal/thermal_zone0/temp', '52582\n');
    await put('sys/class/thermal/thermal_zone0/trip_point_0_temp', '110000\n');
    await put('sys/class/thermal/thermal_zone0/trip_point_0_type', 'critical\n');
    await put('sys/class/thermal/thermal_zone0/trip_point_1_temp', '50000\n');
    await put('sys/class/thermal/thermal_zone0/trip_point_1_type', 'active\n');
    await put('sys/class/thermal/thermal_zone1/type', 'other\n');
    await put('sys/class/thermal/thermal_zone1/temp', '30000\n');
    const health = new LinuxHealth({ root });
    expect(await health.thermal('cpu-thermal')).toEqual({
      zone: 'cpu-thermal',
      temperatureC: 52.582,
      trips: [
        { type: 'critical', temperatureC: 110 },
        { type: 'active', temperatureC: 50 },
      ],
    });
    expect((await health.thermal()).zone).toBe('cpu-thermal');
    expect((await health.thermal('other')).temperatureC).toBe(30);
    expect((await rejection(health.thermal('gpu'))).code).toBe('ERR_HAL_NOT_FOUND');
  });
});

describe('storage', () => {
  it('takes the last /proc/mounts line for the mount point, "ro" among its options, space as df counts it', async () => {
    await put('proc/mounts', ['/dev/mmcblk0p2 / ext4 rw,noatime 0 0', 'overlay / overlay ro,relatime 0 0', '/dev/mmcblk0p1 /boot/firmware vfat rw 0 0', ''].join('\n'));
    const health = new LinuxHealth({ root, statfs: async () => space });
    // used 700 of 700 + 250 available to users (coreutils df, "Use%").
    expect(await health.storage('/')).toEqual({ mountPoint: '/', readOnly: true, usedPct: 73.68 });
    expect((await health.storage('/boot/firmware')).readOnly).toBe(false);
    expect((await rejection(health.storage('/data'))).code).toBe('ERR_HAL_NOT_FOUND');
  });

  it('unescapes mount points with spaces (\\040, fs/proc_namespace.c show_vfsmnt)', async () => {
    await put('proc/mounts', '/dev/sda1 /mnt/my\\040disk ext4 rw 0 0\n');
    expect((await new LinuxHealth({ root, statfs: async () => space }).storage('/mnt/my disk')).readOnly).toBe(false);
  });

  it('reads eMMC wear from life_time and pre_eol_info (drivers/mmc/core/mmc.c MMC_DEV_ATTR; JEDEC EXT_CSD[267-269])', async () => {
    await put('proc/mounts', '/dev/mmcblk0p2 / ext4 rw 0 0\n');
    await put('sys/block/mmcblk0/device/life_time', '0x02 0x0b\n');
    await put('sys/block/mmcblk0/device/pre_eol_info', '0x03\n');
    const status = await new LinuxHealth({ root, statfs: async () => space }).storage('/', 'mmcblk0');
    expect(status.lifeTimeUsedPct).toBe(110);
    expect(status.preEol).toBe(3);
  });

  it('leaves wear out for an SD card, which has no life_time (drivers/mmc/core/sd.c exposes none)', async () => {
    await put('proc/mounts', '/dev/mmcblk0p2 / ext4 rw 0 0\n');
    await put('sys/block/mmcblk0/device/cid', '...\n');
    const status = await new LinuxHealth({ root, statfs: async () => space }).storage('/', 'mmcblk0');
    expect(status.lifeTimeUsedPct).toBeUndefined();
    expect(status.preEol).toBeUndefined();
  });

  it('maps DEVICE_LIFE_TIME_EST: 0x01-0x0A are 10 % steps, 0x0B exceeded, 0x00 not defined', () => {
    expect([0x00, 0x01, 0x05, 0x0a, 0x0b, 0x0c].map(lifeTimeUsedPct)).toEqual([undefined, 10, 50, 100, 110, undefined]);
  });
});

/** adjtimex(2) with modes 0 from another program: Python's ctypes on glibc's adjtimex, struct timex as in <sys/timex.h>. */
const pythonAdjtimex = `
import ctypes, json
class Timex(ctypes.Structure):
    _fields_ = [('modes', ctypes.c_int), ('offset', ctypes.c_long), ('freq', ctypes.c_long), ('maxerror', ctypes.c_long),
                ('esterror', ctypes.c_long), ('status', ctypes.c_int), ('rest', ctypes.c_char * 256)]
tx = Timex()
state = ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.byref(tx))
print(json.dumps({'state': state, 'status': tx.status, 'maxerror': tx.maxerror, 'esterror': tx.esterror}))
`;

describe('clock', () => {
  /** What adjtimex(2) answers after a boot without network: ntp_init -> ntp_clear (kernel/time/ntp.c). */
  const neverSynced = { state: TIME_ERROR, status: STA_UNSYNC, maxErrorUs: NTP_PHASE_LIMIT_US, estErrorUs: NTP_PHASE_LIMIT_US };
  /** What it answers once a daemon slewed the clock: ADJ_STATUS with STA_PLL clears STA_UNSYNC (process_adj_status), ADJ_MAXERROR 0, then 500 us a second (second_overflow). */
  const synced = { state: TIME_OK, status: STA_PLL, maxErrorUs: 32_000, estErrorUs: 1_000 };

  it('without the addon, is synchronised while systemd-timesyncd has touched /run/systemd/timesync/synchronized (systemd-timesyncd.service(8))', async () => {
    await put('run/systemd/timesync/synchronized', '');
    const touched = new Date('2026-01-01T00:00:00Z');
    await utimes(join(root, 'run/systemd/timesync/synchronized'), touched, touched);
    const status = await new LinuxHealth({ root, now: () => touched.getTime() + 64_000, adjtimex: () => undefined }).clock();
    expect(status).toMatchObject({ synchronized: true, sinceSyncS: 64 });
  });

  it('without the addon, is not synchronised while timesyncd runs without the marker, and unsupported without timesyncd', async () => {
    await mkdir(join(root, 'run/systemd/timesync'), { recursive: true });
    expect(await new LinuxHealth({ root, adjtimex: () => undefined }).clock()).toMatchObject({ synchronized: false, why: 'systemd-timesyncd has not synchronised since boot' });
    await rm(join(root, 'run'), { recursive: true });
    const err = await rejection(new LinuxHealth({ root, adjtimex: () => undefined }).clock());
    expect(err.code).toBe('ERR_HAL_UNSUPPORTED');
    expect(err.message).toMatch(/timesyncd is not running.*adjtimex/);
  });

  it("takes the kernel's word over timesyncd's marker: a Pi whose last sync was long ago and whose maxerror reached NTP_PHASE_LIMIT (second_overflow sets STA_UNSYNC) is not synchronised", async () => {
    await put('run/systemd/timesync/synchronized', '');
    const touched = new Date('2026-01-01T00:00:00Z');
    await utimes(join(root, 'run/systemd/timesync/synchronized'), touched, touched);
    const now = () => touched.getTime() + 40_000_000;
    const status = await new LinuxHealth({ root, now, adjtimex: () => neverSynced }).clock();
    expect(status).toEqual({
      synchronized: false,
      sinceSyncS: 40_000,
      source: `adjtimex, ${join(root, 'run/systemd/timesync/synchronized')}`,
      kernel: { unsync: true, timeError: true, maxErrorS: 16, estErrorS: 16 },
      why: "the kernel's clock is not synchronised: STA_UNSYNC set, maxerror 16 s, at NTP_PHASE_LIMIT (16 s)",
    });
    expect(await new LinuxHealth({ root, now, adjtimex: () => synced }).clock()).toMatchObject({ synchronized: true, sinceSyncS: 40_000, kernel: { unsync: false, maxErrorS: 0.032 } });
  });

  it('reads a clock a daemon other than timesyncd keeps (chrony, ntpd: no marker) from the kernel instead of giving up', async () => {
    expect(await new LinuxHealth({ root, adjtimex: () => synced }).clock()).toEqual({
      synchronized: true,
      source: 'adjtimex',
      kernel: { unsync: false, timeError: false, maxErrorS: 0.032, estErrorS: 0.001 },
    });
    expect(await new LinuxHealth({ root, adjtimex: () => neverSynced }).clock()).toMatchObject({ synchronized: false, kernel: { unsync: true } });
  });

  it('is not synchronised at maxerror NTP_PHASE_LIMIT even before second_overflow sets STA_UNSYNC (ADJ_MAXERROR clamps to it, process_adjtimex_modes), nor with STA_CLOCKERR (is_error_status: TIME_ERROR)', async () => {
    const atLimit = await new LinuxHealth({ root, adjtimex: () => ({ ...synced, maxErrorUs: NTP_PHASE_LIMIT_US }) }).clock();
    expect(atLimit).toMatchObject({ synchronized: false, why: "the kernel's clock is not synchronised: maxerror 16 s, at NTP_PHASE_LIMIT (16 s)" });
    const justUnder = await new LinuxHealth({ root, adjtimex: () => ({ ...synced, maxErrorUs: NTP_PHASE_LIMIT_US - 500 }) }).clock();
    expect(justUnder.synchronized).toBe(true);
    const clockErr = await new LinuxHealth({ root, adjtimex: () => ({ ...synced, state: TIME_ERROR, status: STA_PLL | STA_CLOCKERR }) }).clock();
    expect(clockErr).toMatchObject({ synchronized: false, why: "the kernel's clock is not synchronised: STA_CLOCKERR set" });
  });

  it('names the syscall when adjtimex fails', async () => {
    const failing = () => {
      throw Object.assign(new Error('adjtimex: Bad address'), { code: 'EFAULT' });
    };
    const err = await rejection(new LinuxHealth({ root, adjtimex: failing }).clock());
    expect(err).toMatchObject({ code: 'ERR_HAL_IO', target: 'clock' });
    expect(err.message).toContain('adjtimex');
  });

  it("reads this host's own kernel through the addon, as another program's adjtimex(2) sees it", async (ctx) => {
    const addon = ioctlAddon();
    requireOrSkip(ctx, addon?.adjtimexRead ? undefined : 'the ioctl addon with adjtimexRead is not built (npm run build:native)');
    const mine = addon!.adjtimexRead!();
    const theirs = JSON.parse((await program('python3', ['-c', pythonAdjtimex])).stdout) as { state: number; status: number; maxerror: number; esterror: number };
    expect(mine.state).toBe(theirs.state);
    expect(mine.status).toBe(theirs.status);
    // second_overflow() adds 500 us a second to maxerror until NTP_PHASE_LIMIT; the two reads are well within 10 s.
    expect(Math.abs(mine.maxErrorUs - theirs.maxerror)).toBeLessThanOrEqual(5_000);
    expect(mine.estErrorUs).toBe(theirs.esterror);
    const status = await new LinuxHealth({ root }).clock();
    expect(status.source).toBe('adjtimex');
    expect(status.synchronized).toBe((mine.status & STA_UNSYNC) === 0 && mine.state !== TIME_ERROR && mine.maxErrorUs < NTP_PHASE_LIMIT_US);
  });
});

describe('memory', () => {
  it('reads the some and full averages of /proc/pressure/memory (Documentation/accounting/psi.rst)', async () => {
    await put('proc/pressure/memory', 'some avg10=1.53 avg60=0.87 avg300=0.22 total=123\nfull avg10=0.50 avg60=0.10 avg300=0.00 total=45\n');
    expect(await new LinuxHealth({ root }).memory()).toEqual({ someAvg10: 1.53, someAvg60: 0.87, fullAvg10: 0.5, fullAvg60: 0.1 });
  });

  it('says PSI is off when the file is absent', async () => {
    const err = await rejection(new LinuxHealth({ root }).memory());
    expect(err.code).toBe('ERR_HAL_UNSUPPORTED');
    expect(err.message).toMatch(/CONFIG_PSI/);
  });
});

describe('on this machine, the real files', () => {
  const health = new LinuxHealth();

  it.runIf(existsSync('/proc/pressure/memory'))('reads /proc/pressure/memory', async () => {
    const pressure = await health.memory();
    for (const value of Object.values(pressure)) expect(value).toBeGreaterThanOrEqual(0);
  });

  it('reads / from /proc/mounts with statfs', async () => {
    const status = await health.storage('/');
    const line = readFileSync('/proc/mounts', 'utf8').trim().split('\n').filter((l) => l.split(' ')[1] === '/').at(-1)!;
    expect(status.readOnly).toBe(line.split(' ')[3]!.split(',').includes('ro'));
    expect(status.usedPct).toBeGreaterThanOrEqual(0);
    expect(status.usedPct).toBeLessThanOrEqual(100);
  });

  it.runIf(existsSync('/sys/class/thermal/thermal_zone0/temp'))('reads thermal_zone0', async () => {
    expect(Number.isFinite((await health.thermal()).temperatureC)).toBe(true);
  });

  it.runIf(!existsSync('/sys/class/thermal/thermal_zone0'))('reports a machine without thermal zones as not found', async () => {
    expect((await rejection(health.thermal())).code).toBe('ERR_HAL_NOT_FOUND');
  });
});

describeAsRoot('a real read-only remount', 'mounting a tmpfs in a private mount namespace', ['unshare', 'mount'], () => {
  it('reads "ro" from the real /proc/mounts after mount -o remount,ro, and the space statfs(2) reports', async () => {
    const body = fileURLToPath(new URL('./health-readonly-body.ts', import.meta.url));
    const { stdout } = await promisify(execFile)('unshare', ['-m', '--propagation', 'private', process.execPath, '--import', 'tsx', body, root], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    });
    const { before, after } = JSON.parse(stdout) as Record<'before' | 'after', { readOnly: boolean; usedPct: number }>;
    expect(before.readOnly).toBe(false);
    expect(after.readOnly).toBe(true);
    // 512 KiB of a 1 MiB tmpfs (mm/shmem.c counts pages; nothing is reserved for root, so df's Use% is 50).
    expect(after.usedPct).toBeCloseTo(50, 0);
  });
});
