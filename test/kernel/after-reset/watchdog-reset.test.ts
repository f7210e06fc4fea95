/**
 * The second boot of the kernel lane, after i6300esb reset the VM under a wedged firmware (the host
 * saw QEMU's WATCHDOG event). i6300esb's probe reads the ESB_WDT_TIMEOUT bit of its reload register,
 * which QEMU's device keeps across the reset it caused, and reports WDIOF_CARDRESET as boot status
 * (esb_initdevice in drivers/watchdog/i6300esb.c).
 */
import pino from 'pino';
import { expect, it } from 'vitest';
import { systemClock } from '../../../hal/clock.js';
import { LinuxWatchdog } from '../../../hal/linux/watchdog.js';
import { WDIOF_CARDRESET } from '../../../hal/watchdog.js';
import { EventLoopMonitor } from '../../../firmware/event-loop.js';
import { WatchdogKeeper } from '../../../firmware/watchdog-keeper.js';
import { describeInLane } from '../in-guest.js';

describeInLane('after a watchdog reset', () => {
  it('the driver reports WDIOF_CARDRESET, in sysfs and by WDIOC_GETBOOTSTATUS', async () => {
    const wd = new LinuxWatchdog('/dev/watchdog0');
    const info = await wd.open();
    await wd.close({ magic: true });
    expect(info.bootStatus).toBe(WDIOF_CARDRESET);
  });

  it('the firmware keeper reports and logs that the last reset was the watchdog', async () => {
    const lines: Array<{ msg: string }> = [];
    const logger = pino({}, { write: (line: string) => lines.push(JSON.parse(line) as { msg: string }) });
    const eventLoop = new EventLoopMonitor();
    const keeper = new WatchdogKeeper({
      watchdog: new LinuxWatchdog('/dev/watchdog0'),
      config: { device: '/dev/watchdog0', timeoutS: 10 },
      clock: systemClock,
      eventLoop,
      logger,
    });
    await keeper.start();
    expect(keeper.health()).toMatchObject({ health: 'ok', reading: { timeoutS: 10, lastResetByWatchdog: true } });
    await keeper.stop({ magic: true });
    expect(lines.map((l) => l.msg)).toContain("the last reset of this board was the watchdog's");
  });
});
