/**
 * The last act of the kernel lane's first boot: the firmware's watchdog keeper arms i6300esb
 * (/dev/watchdog0) with a 2 s timeout, kicks it, and then the event loop wedges for good. Nothing
 * kicks any more, so the watchdog must reset the VM; the host watches for QEMU's WATCHDOG event and
 * the second boot checks what the firmware reports (test/kernel/after-reset).
 */
import pino from 'pino';
import { systemClock } from '../../hal/clock.js';
import { LinuxWatchdog } from '../../hal/linux/watchdog.js';
import { EventLoopMonitor } from '../../firmware/event-loop.js';
import { WatchdogKeeper } from '../../firmware/watchdog-keeper.js';

const eventLoop = new EventLoopMonitor();
eventLoop.start();
const keeper = new WatchdogKeeper({
  watchdog: new LinuxWatchdog('/dev/watchdog0'),
  config: { device: '/dev/watchdog0', timeoutS: 2 },
  clock: systemClock,
  eventLoop,
  logger: pino(),
});
await keeper.start();
const health = keeper.health();
if (health.health !== 'ok') throw new Error(`the keeper did not arm the watchdog: ${health.reason}`);
process.stdout.write(`handcheck-lane: wedged ${JSON.stringify(health.reading)}\n`);
for (;;) {
  // wedged on purpose
}
