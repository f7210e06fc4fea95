import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { EventLoopMonitor } from '../../firmware/event-loop.js';
import { StatusLed, ledPattern } from '../../firmware/status-led.js';
import { WatchdogKeeper } from '../../firmware/watchdog-keeper.js';
import { HalInvalidArgumentError } from '../../hal/errors.js';
import type { GpioValue } from '../../hal/gpio.js';
import { type Watchdog, WDIOF_CARDRESET } from '../../hal/watchdog.js';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { SimGpio } from '../../sim/gpio.js';
import { SimWatchdog } from '../../sim/watchdog.js';

/** An event-loop monitor whose lag the test sets: the keeper's input, not the thing under test. */
function loop(lagMs = 0): EventLoopMonitor {
  return { currentLagMs: () => lagMs } as unknown as EventLoopMonitor;
}

function watchdogSetup(maxTimeoutS = 15) {
  const clock = new VirtualClock(0);
  const faults = new FaultRegistry(clock);
  const resets: number[] = [];
  const watchdog = new SimWatchdog('/dev/watchdog', clock, faults, { timeoutS: 10, maxTimeoutS, onExpire: () => resets.push(clock.now()) });
  return { clock, watchdog, resets, faults };
}

describe('WatchdogKeeper', () => {
  it('fails the watchdog at the first kick that does not restart the countdown (sim: starve), before the board resets', async () => {
    const { clock, watchdog, resets, faults } = watchdogSetup();
    const keeper = new WatchdogKeeper({ watchdog, config: { device: '/dev/watchdog', timeoutS: 10 }, clock, eventLoop: loop(), logger: pino({ level: 'silent' }) });
    await keeper.start();
    await clock.advance(5000);
    expect(keeper.health()).toMatchObject({ health: 'ok' });
    // The kicks are written but never reach the hardware (WDIOC_GETTIMELEFT, watchdog_dev.c
    // watchdog_get_timeleft: the countdown keeps running down).
    faults.inject({ target: 'watchdog', kind: 'starve' });
    await clock.advance(10_000 / 3);
    expect(keeper.health()).toMatchObject({ health: 'failed', reason: expect.stringMatching(/kicks do not reach the watchdog: \d s left/) });
    expect(resets).toEqual([]);
    faults.clearAll();
    await clock.advance(10_000 / 3);
    expect(keeper.health()).toMatchObject({ health: 'ok' });
  });

  it('kicks while healthy, so the board never resets', async () => {
    const { clock, watchdog, resets } = watchdogSetup();
    const keeper = new WatchdogKeeper({ watchdog, config: { device: '/dev/watchdog', timeoutS: 10 }, clock, eventLoop: loop(), logger: pino({ level: 'silent' }) });
    await keeper.start();
    await clock.advance(120_000);
    expect(resets).toEqual([]);
    expect(keeper.kicks).toBe(1 + Math.floor(120_000 / (10_000 / 3)));
    expect(keeper.health()).toMatchObject({ health: 'ok' });
  });

  it('withholds kicks while a diagnosis is stuck, and the watchdog fires', async () => {
    const { clock, watchdog, resets } = watchdogSetup();
    let stuckSince: number | undefined;
    const keeper = new WatchdogKeeper({
      watchdog,
      config: { device: '/dev/watchdog', timeoutS: 10 },
      clock,
      eventLoop: loop(),
      logger: pino({ level: 'silent' }),
      oldestDiagnosisMs: () => (stuckSince === undefined ? 0 : clock.now() - stuckSince),
    });
    await keeper.start();
    await clock.advance(20_000);
    stuckSince = clock.now();
    await clock.advance(30_000);
    expect(keeper.health()).toMatchObject({ health: 'failed', reason: expect.stringContaining('a diagnosis has run for') });
    expect(resets.length).toBe(1);
    expect(resets[0]! - 20_000).toBeLessThanOrEqual(5000 + 10_000 + 10_000 / 3);
  });

  it('withholds kicks while the event loop lags past its bound', async () => {
    const { clock, watchdog, resets } = watchdogSetup();
    const eventLoop = loop(5000);
    const keeper = new WatchdogKeeper({ watchdog, config: { device: '/dev/watchdog', timeoutS: 10 }, clock, eventLoop, logger: pino({ level: 'silent' }) });
    await keeper.start();
    await clock.advance(11_000);
    expect(resets).toEqual([10_000]);
    expect(keeper.kicks).toBe(0);
  });

  it('kicks within the timeout in force when the simulated bcm2835 refuses a longer one (EINVAL, never clamped)', async () => {
    const { clock, watchdog, resets } = watchdogSetup(15);
    const keeper = new WatchdogKeeper({ watchdog, config: { device: '/dev/watchdog', timeoutS: 60 }, clock, eventLoop: loop(), logger: pino({ level: 'silent' }) });
    await keeper.start();
    await clock.advance(100_000);
    expect(resets).toEqual([]);
    expect(keeper.health().reading.timeoutS).toBe(10);
  });

  it('magic close on an orderly stop disarms; a plain stop leaves it armed', async () => {
    const orderly = watchdogSetup();
    const a = new WatchdogKeeper({ watchdog: orderly.watchdog, config: { device: '/dev/watchdog', timeoutS: 10 }, clock: orderly.clock, eventLoop: loop(), logger: pino({ level: 'silent' }) });
    await a.start();
    await a.stop({ magic: true });
    await orderly.clock.advance(60_000);
    expect(orderly.resets).toEqual([]);

    const crashed = watchdogSetup();
    const b = new WatchdogKeeper({ watchdog: crashed.watchdog, config: { device: '/dev/watchdog', timeoutS: 10 }, clock: crashed.clock, eventLoop: loop(), logger: pino({ level: 'silent' }) });
    await b.start();
    await b.stop({ magic: false });
    await crashed.clock.advance(60_000);
    expect(crashed.resets).toEqual([10_000]);
  });

  it('keeps the timeout in force, and says so, when the driver refuses the one asked (EINVAL as bcm2835_wdt above 15 s)', async () => {
    const { clock, watchdog, resets } = watchdogSetup(15);
    const refusing: Watchdog = Object.assign(Object.create(watchdog) as Watchdog, {
      setTimeout: (seconds: number) =>
        Promise.reject(new HalInvalidArgumentError(`refused a timeout of ${seconds} s (EINVAL)`, { target: watchdog.target, errno: 'EINVAL' })),
    });
    const lines: Array<{ msg: string; requestedS?: number; appliedS?: number }> = [];
    const logger = pino({}, { write: (line: string) => lines.push(JSON.parse(line) as { msg: string }) });
    const keeper = new WatchdogKeeper({ watchdog: refusing, config: { device: '/dev/watchdog', timeoutS: 60 }, clock, eventLoop: loop(), logger });
    await keeper.start();
    await clock.advance(100_000);
    expect(resets).toEqual([]);
    expect(keeper.health()).toMatchObject({ health: 'ok', reading: { timeoutS: 10 } });
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'watchdog refused the requested timeout; keeping the timeout in force', requestedS: 60, appliedS: 10 }));
  });

  it("reports the driver's boot status: whether the last reset was the watchdog's", async () => {
    for (const [bootStatus, expected] of [[WDIOF_CARDRESET, true], [0, false]] as const) {
      const { clock, watchdog } = watchdogSetup();
      const withStatus: Watchdog = Object.assign(Object.create(watchdog) as Watchdog, {
        open: async () => ({ ...(await watchdog.open()), bootStatus }),
      });
      const keeper = new WatchdogKeeper({ watchdog: withStatus, config: { device: '/dev/watchdog', timeoutS: 10 }, clock, eventLoop: loop(), logger: pino({ level: 'silent' }) });
      await keeper.start();
      expect(keeper.health().reading.lastResetByWatchdog).toBe(expected);
    }
    const { clock, watchdog } = watchdogSetup();
    // A backend that cannot tell (sysfs without the addon) leaves bootStatus out.
    const silentDriver: Watchdog = Object.assign(Object.create(watchdog) as Watchdog, {
      open: async () => {
        const { bootStatus: _, ...info } = await watchdog.open();
        return info;
      },
    });
    const unknown = new WatchdogKeeper({ watchdog: silentDriver, config: { device: '/dev/watchdog', timeoutS: 10 }, clock, eventLoop: loop(), logger: pino({ level: 'silent' }) });
    await unknown.start();
    expect(unknown.health().reading).not.toHaveProperty('lastResetByWatchdog');
  });
});

describe('status LED', () => {
  it('patterns: steady when ok, slow blink when degraded, a blink code naming the failed class', () => {
    expect(ledPattern([{ kind: 'tmp102', state: 'ok' }])).toEqual([1]);
    expect(ledPattern([{ kind: 'tmp102', state: 'degraded' }])).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
    expect(ledPattern([{ kind: 'sfp', state: 'failed' }])).toEqual([1, 0, 1, 0, 0, 0, 0, 0]);
    expect(ledPattern([{ kind: 'ina219', state: 'degraded' }, { kind: 'serial-peer', state: 'failed' }])).toEqual([1, 0, 1, 0, 1, 0, 0, 0, 0, 0]);
  });

  it('drives the GPIO line with the pattern on the board clock', async () => {
    const clock = new VirtualClock(0);
    const gpio = new SimGpio(clock, new FaultRegistry(clock));
    gpio.define('status-led', { chip: 'sim-gpio', line: 'GPIO17' });
    const led = new StatusLed(await gpio.open({ chip: 'sim-gpio', line: 'GPIO17', direction: 'out' }), clock);
    led.start();
    led.show([{ kind: 'ethernet', state: 'failed' }]);
    const levels: GpioValue[] = [];
    for (let i = 0; i < 8; i++) {
      await clock.advance(250);
      levels.push(gpio.level('status-led'));
    }
    expect(levels).toEqual([0, 1, 0, 0, 0, 0, 0, 1]);
    led.show([{ kind: 'ethernet', state: 'ok' }]);
    await clock.advance(1000);
    expect(gpio.level('status-led')).toBe(1);
    await led.stop();
    expect(gpio.level('status-led')).toBe(0);
  });
});
