/**
 * The watchdog backend on real drivers: QEMU's i6300esb (drivers/watchdog/i6300esb.c) as
 * /dev/watchdog0 and softdog (drivers/watchdog/softdog.c) as /dev/watchdog1, through the ioctls of
 * drivers/watchdog/watchdog_dev.c.
 */
import { readFile } from 'node:fs/promises';
import { afterEach, expect, it } from 'vitest';
import { LinuxWatchdog } from '../../../hal/linux/watchdog.js';
import { rejection } from '../../helpers/rejection.js';
import { describeInLane } from '../in-guest.js';

const opened: LinuxWatchdog[] = [];
function watchdog(device: string): LinuxWatchdog {
  const wd = new LinuxWatchdog(device);
  opened.push(wd);
  return wd;
}
afterEach(async () => {
  for (const wd of opened.splice(0)) await wd.close({ magic: true });
});

describeInLane('watchdog ioctls on i6300esb and softdog', () => {
  it('identifies the drivers with WDIOC_GETSUPPORT and reads their timeouts', async () => {
    expect(await watchdog('/dev/watchdog0').open()).toMatchObject({ identity: 'i6300ESB timer', timeoutS: 30 });
    // softdog's default soft_margin is 60 s (SOFT_MARGIN).
    expect(await watchdog('/dev/watchdog1').open()).toMatchObject({ identity: 'Software Watchdog', timeoutS: 60 });
  });

  it('sets the timeout with WDIOC_SETTIMEOUT; the kernel applies it and sysfs agrees', async () => {
    const wd = watchdog('/dev/watchdog0');
    await wd.open();
    expect(await wd.setTimeout(7)).toBe(7);
    expect(await wd.getTimeout()).toBe(7);
    expect((await readFile('/sys/class/watchdog/watchdog0/timeout', 'utf8')).trim()).toBe('7');
  });

  it('answers EINVAL above the driver maximum (i6300esb: 2046 s, ESB_HEARTBEAT_MAX) and keeps the timeout in force', async () => {
    const wd = watchdog('/dev/watchdog0');
    await wd.open();
    await wd.setTimeout(10);
    const error = await rejection(wd.setTimeout(2047));
    expect([error.code, error.errno]).toEqual(['ERR_HAL_INVALID_ARG', 'EINVAL']);
    expect(error.message).toContain('the timeout in force is 10 s');
    expect(await wd.getTimeout()).toBe(10);
  });

  it('reports no time left on either: neither i6300esb nor softdog has get_timeleft, so WDIOC_GETTIMELEFT is EOPNOTSUPP (watchdog_get_timeleft)', async () => {
    for (const device of ['/dev/watchdog0', '/dev/watchdog1']) {
      const wd = watchdog(device);
      await wd.open();
      const error = await rejection(wd.timeLeft());
      expect([error.code, error.errno]).toEqual(['ERR_HAL_UNSUPPORTED', 'EOPNOTSUPP']);
    }
  });

  it('a second opener gets EBUSY: the device allows one (watchdog_open in watchdog_dev.c)', async () => {
    await watchdog('/dev/watchdog0').open();
    const error = await rejection(watchdog('/dev/watchdog0').open());
    expect([error.code, error.errno]).toEqual(['ERR_HAL_BUS_BUSY', 'EBUSY']);
  });

  it('a magic close stops the watchdog: sysfs state goes from active to inactive', async () => {
    const wd = new LinuxWatchdog('/dev/watchdog0');
    await wd.open();
    expect((await readFile('/sys/class/watchdog/watchdog0/state', 'utf8')).trim()).toBe('active');
    await wd.close({ magic: true });
    expect((await readFile('/sys/class/watchdog/watchdog0/state', 'utf8')).trim()).toBe('inactive');
  });

  it('reports a boot status on the first boot without the reset flag', async () => {
    const info = await watchdog('/dev/watchdog0').open();
    expect(info.bootStatus).toBe(0);
  });
});
