/**
 * The simulated watchdog follows drivers/watchdog/bcm2835_wdt.c (max_timeout and .timeout both
 * WDOG_TICKS_TO_SECS(PM_WDOG_TIME_SET) = 15 s, no max_hw_heartbeat_ms) and the watchdog core in
 * drivers/watchdog/watchdog_dev.c (single opener, EINVAL above max_timeout).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseBoards, selectBoard } from '../../config/boards.js';
import { SimBoard } from '../../sim/board.js';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { SimWatchdog } from '../../sim/watchdog.js';
import { WDIOF_CARDRESET } from '../../hal/watchdog.js';

const boards = parseBoards(readFileSync(new URL('../../boards.json', import.meta.url), 'utf8'), 'boards.json');

function setup(timeoutS = 10) {
  const clock = new VirtualClock(0);
  const faults = new FaultRegistry(clock);
  const expiries: number[] = [];
  const wdt = new SimWatchdog('/dev/watchdog', clock, faults, { timeoutS, maxTimeoutS: 15, onExpire: () => expiries.push(clock.now()) });
  return { clock, faults, wdt, expiries };
}

describe('SimWatchdog', () => {
  it('resets the board when not kicked within the timeout, and not while kicked', async () => {
    const { clock, wdt, expiries } = setup(10);
    expect(await wdt.open()).toEqual({ identity: 'Simulated Watchdog', bootStatus: 0, timeoutS: 10 });
    for (let i = 0; i < 5; i++) {
      await clock.advance(9000);
      await wdt.kick();
    }
    expect(expiries).toEqual([]);
    expect(await wdt.timeLeft()).toBe(10);
    await clock.advance(10_000);
    expect(expiries).toEqual([55_000]);
    expect(wdt.isArmed).toBe(false);
  });

  it("reports WDIOF_CARDRESET in its boot status after a reset it caused, as i6300esb.c esb_initdevice does; a Pi's bcm2835_wdt never sets it", async () => {
    const { clock, wdt } = setup(10);
    expect((await wdt.open()).bootStatus).toBe(0);
    await clock.advance(10_000);
    expect((await wdt.open()).bootStatus).toBe(WDIOF_CARDRESET);
    const pi = new SimBoard(selectBoard(boards, 'rpi4'), { clock: new VirtualClock(0) });
    const bcm = await pi.watchdog();
    await bcm.open();
    await pi.clock.advance(15_000);
    expect(pi.resets).toBe(1);
    expect((await bcm.open()).bootStatus).toBe(0);
    await pi.close();
  });

  it('refuses a timeout above what the hardware counts with EINVAL and keeps the one in force, never clamping (watchdog_dev.c watchdog_set_timeout: watchdog_timeout_invalid)', async () => {
    const { wdt } = setup();
    await wdt.open();
    const err = await wdt.setTimeout(60).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_HAL_INVALID_ARG', errno: 'EINVAL' });
    expect(await wdt.getTimeout()).toBe(10);
    expect(await wdt.setTimeout(15)).toBe(15);
    await expect(wdt.setTimeout(0)).rejects.toMatchObject({ code: 'ERR_HAL_INVALID_ARG' });
  });

  it('without a hardware maximum (the core emulating long timeouts) accepts any timeout', async () => {
    const clock = new VirtualClock(0);
    const wdt = new SimWatchdog('/dev/watchdog', clock, new FaultRegistry(clock), { onExpire: () => undefined });
    await wdt.open();
    expect(await wdt.setTimeout(600)).toBe(600);
  });

  it.each(['rpi4', 'rpi5', 'rpi-zero-2w'])(
    '%s simulates bcm2835_wdt: 15 s in force at open (.timeout = WDOG_TICKS_TO_SECS(0xfffff)), 10 s accepted, 30 s refused with EINVAL',
    async (id) => {
      const board = new SimBoard(selectBoard(boards, id), { clock: new VirtualClock(0) });
      const wdt = await board.watchdog();
      expect(await wdt.open()).toEqual({ identity: 'Broadcom BCM2835 Watchdog timer', bootStatus: 0, timeoutS: 15 });
      await expect(wdt.setTimeout(30)).rejects.toMatchObject({ errno: 'EINVAL' });
      expect(await wdt.getTimeout()).toBe(15);
      expect(await wdt.setTimeout(10)).toBe(10);
      await wdt.close({ magic: true });
      await board.close();
    },
  );

  it('magic close disarms; a plain close leaves it armed', async () => {
    const disarmed = setup();
    await disarmed.wdt.open();
    await disarmed.wdt.close({ magic: true });
    await disarmed.clock.advance(60_000);
    expect(disarmed.expiries).toEqual([]);

    const armed = setup();
    await armed.wdt.open();
    await armed.wdt.close();
    await armed.clock.advance(10_000);
    expect(armed.expiries).toEqual([10_000]);
  });

  it('starve swallows kicks so the watchdog fires', async () => {
    const { clock, faults, wdt, expiries } = setup(10);
    await wdt.open();
    faults.inject({ target: 'watchdog', kind: 'starve', atMs: 5000 });
    for (let i = 0; i < 4; i++) {
      await clock.advance(4000);
      if (wdt.isArmed) await wdt.kick();
    }
    expect(wdt.kicks).toBe(1);
    expect(expiries).toEqual([14_000]);
  });

  it('is single-open like /dev/watchdog', async () => {
    const { wdt } = setup();
    await wdt.open();
    await expect(wdt.open()).rejects.toMatchObject({ code: 'ERR_HAL_BUS_BUSY' });
  });
});
