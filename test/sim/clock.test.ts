import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it, vi } from 'vitest';
import { VirtualClock } from '../../sim/clock.js';

describe('VirtualClock', () => {
  it('fires timers in time order and lets their async work settle before the next', async () => {
    const clock = new VirtualClock(0);
    const seen: string[] = [];
    clock.setTimeout(() => seen.push('b@20'), 20);
    clock.setTimeout(() => {
      seen.push('a@10');
      void Promise.resolve().then(() => seen.push('a-then'));
    }, 10);
    const tick = clock.setInterval(() => seen.push(`i@${clock.now()}`), 15);
    await clock.advance(31);
    tick.cancel();
    expect(seen).toEqual(['a@10', 'a-then', 'i@15', 'b@20', 'i@30']);
    expect(clock.now()).toBe(31);
  });

  it('sleep resolves on virtual time and rejects when aborted', async () => {
    const clock = new VirtualClock(1000);
    let woke = false;
    const sleeping = clock.sleep(500).then(() => (woke = true));
    await clock.advance(499);
    expect(woke).toBe(false);
    await clock.advance(1);
    await sleeping;
    expect(woke).toBe(true);

    const controller = new AbortController();
    const aborted = clock.sleep(100, controller.signal);
    controller.abort(new Error('stop'));
    await expect(aborted).rejects.toThrow('stop');
  });

  it('follows real time in realtime mode, scaled by speed', async () => {
    const clock = new VirtualClock(0);
    clock.startRealtime(100);
    const fired = await new Promise<number>((resolve) => clock.setTimeout(() => resolve(clock.now()), 1000));
    clock.stopRealtime();
    expect(fired).toBeGreaterThanOrEqual(1000);
    await expect(clock.advance(1)).resolves.toBeUndefined();
  });

  it('refuses to advance while following real time', async () => {
    const clock = new VirtualClock(0);
    clock.startRealtime(1);
    await expect(clock.advance(10)).rejects.toMatchObject({ code: 'ERR_SIM_CLOCK' });
    clock.stopRealtime();
  });

  it('runs until work settles, moving time only while everything waits on the clock', async () => {
    const clock = new VirtualClock(0);
    // Computing between timers (a busy or slow host) costs no virtual time: the timer still fires at 50.
    const busy = (ms: number): void => {
      for (const end = performance.now() + ms; performance.now() < end; );
    };
    const work = (async () => {
      busy(30);
      await new Promise((resolve) => setImmediate(resolve));
      busy(30);
      await clock.sleep(50);
      return clock.now();
    })();
    expect(await clock.runUntil(work)).toBe(50);
    await expect(clock.runUntil(clock.sleep(500), { limitMs: 100 })).rejects.toMatchObject({ code: 'ERR_SIM_CLOCK' });
    await expect(clock.runUntil(Promise.reject(new Error('broken')))).rejects.toThrow('broken');
  });

  it('following real time, arms no Node timer longer than Node honours (2^31-1 ms), which would fire after 1 ms', () => {
    // Node clamps a longer delay to 1 ms (lib/internal/timers.js, TimeoutOverflowWarning): a fault
    // lasting 25 days used to wake the board every millisecond.
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const clock = new VirtualClock(0);
    try {
      clock.startRealtime(1);
      clock.setTimeout(() => undefined, 3_000_000_000);
      const delays = spy.mock.calls.map((call) => call[1] ?? 0);
      expect(delays.length).toBeGreaterThan(0);
      expect(Math.max(...delays)).toBe(2 ** 31 - 1);
    } finally {
      clock.stopRealtime();
      spy.mockRestore();
    }
  });

  it('lets go of a canceled far-off timer at once, not at its due time', async () => {
    // A scenario stopped with DELETE /scenario cancels steps due in hours; they held their closures
    // (and the scenario) until then.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const clock = new VirtualClock(0);
    const held: Array<WeakRef<object>> = [];
    const timers = Array.from({ length: 200 }, () => {
      const payload = { bytes: new Uint8Array(1024) };
      held.push(new WeakRef(payload));
      return clock.setTimeout(() => payload.bytes.fill(1), 3_600_000);
    });
    for (const timer of timers) timer.cancel();
    expect(clock.pending).toBe(0);
    await new Promise<void>((resolve) => setImmediate(resolve));
    gc();
    expect(held.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
  });
});
