/**
 * The board's health readings (hal/linux/health.ts) against the files the VM's kernel makes, not
 * fakes: PSI (kernel/sched/psi.c, psi_show), /proc/mounts (fs/proc_namespace.c, show_vfsmnt, which
 * prints "ro" from the mount's and the superblock's flags) with statfs(2), a tmpfs remounted read-only
 * (mm/shmem.c, shmem_reconfigure; shmem_statfs counts pages), and what a kernel that is not a Pi's
 * lacks: no rpi_volt hwmon, no get_throttled, no systemd-timesyncd. And the clock as a Pi's after a boot
 * without network: the VM runs no time daemon, so the kernel's NTP state is what ntp_init() left
 * (kernel/time/ntp.c: time_status STA_UNSYNC, time_maxerror and time_esterror NTP_PHASE_LIMIT), read
 * through the addon's adjtimex(2), which answers TIME_ERROR (__do_adjtimex, is_error_status).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { LinuxHealth } from '../../../hal/linux/health.js';
import { rejection } from '../../helpers/rejection.js';
import { describeInLane } from '../in-guest.js';

const health = new LinuxHealth();

describeInLane('health readings on the VM kernel', () => {
  it('reads memory pressure from the kernel\'s /proc/pressure/memory (CONFIG_PSI on, not disabled at boot)', async () => {
    const pressure = await health.memory();
    expect(Object.keys(pressure).sort()).toEqual(['fullAvg10', 'fullAvg60', 'someAvg10', 'someAvg60']);
    for (const value of Object.values(pressure)) {
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThanOrEqual(100);
    }
  });

  it('sees the guest\'s root, the host\'s tree over 9p mounted ro, as read-only', async () => {
    const status = await health.storage('/');
    expect(status.readOnly).toBe(true);
    expect(status.usedPct).toBeGreaterThan(0);
    expect(status.usedPct).toBeLessThanOrEqual(100);
  });

  it('sees a tmpfs go read-only on remount, with the space statfs(2) reports', async () => {
    const dir = `/tmp/health-${process.pid}`;
    mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'none', dir]);
    try {
      writeFileSync(`${dir}/half`, Buffer.alloc(512 * 1024));
      const writable = await health.storage(dir);
      expect(writable.readOnly).toBe(false);
      expect(writable.usedPct).toBeCloseTo(50, 0);
      execFileSync('mount', ['-o', 'remount,ro', dir]);
      expect(await health.storage(dir)).toEqual({ ...writable, readOnly: true });
    } finally {
      execFileSync('umount', [dir]);
    }
  });

  it('reads the never-synchronised clock from the kernel itself: STA_UNSYNC, maxerror 16 s, TIME_ERROR', async () => {
    expect(await health.clock()).toEqual({
      synchronized: false,
      source: 'adjtimex',
      kernel: { unsync: true, timeError: true, maxErrorS: 16, estErrorS: 16 },
      why: "the kernel's clock is not synchronised: STA_UNSYNC set, maxerror 16 s, at NTP_PHASE_LIMIT (16 s)",
    });
  });

  it('reports what a kernel that is not a Pi\'s lacks: power status, timesyncd (without the addon), and (on q35) thermal zones', async () => {
    const power = await rejection(health.power());
    expect(power.code).toBe('ERR_HAL_NOT_FOUND');
    expect(power.message).toContain('rpi_volt');
    expect((await rejection(new LinuxHealth({ adjtimex: () => undefined }).clock())).code).toBe('ERR_HAL_UNSUPPORTED');
    if (existsSync('/sys/class/thermal/thermal_zone0/temp')) {
      const thermal = await health.thermal();
      expect(thermal.temperatureC * 1000).toBe(Number(readFileSync('/sys/class/thermal/thermal_zone0/temp', 'utf8')));
    } else {
      expect((await rejection(health.thermal())).code).toBe('ERR_HAL_NOT_FOUND');
    }
  });
});
