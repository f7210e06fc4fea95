import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { SimWatchdog } from '../../sim/watchdog.js';

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
    expect(await wdt.open()).toEqual({ identity: 'Simulated Watchdog', timeoutS: 10 });
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

  it('clamps the timeout to what the hardware can count and reports the applied value', async () => {
    const { wdt } = setup();
    await wdt.open();
    expect(await wdt.setTimeout(60)).toBe(15);
    expect(await wdt.getTimeout()).toBe(15);
    await expect(wdt.setTimeout(0)).rejects.toMatchObject({ code: 'ERR_HAL_INVALID_ARG' });
  });

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
