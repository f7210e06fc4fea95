import type { VirtualClock } from '../../sim/clock.js';

/**
 * Advances `clock` in `stepMs` steps until `promise` settles, then returns or throws its outcome.
 */
export async function settle<T>(clock: VirtualClock, promise: Promise<T>, stepMs = 1, limitMs = 10_000): Promise<T> {
  let settled = false;
  const observed = promise.then(
    (value) => {
      settled = true;
      return value;
    },
    (err: unknown) => {
      settled = true;
      throw err;
    },
  );
  observed.catch(() => undefined);
  for (let waited = 0, steps = 0; !settled && waited <= limitMs; waited += stepMs, steps++) {
    await clock.advance(stepMs);
    // Real I/O the operation waits on (the boot record's fsync) runs on the wall clock: a real
    // millisecond every 100 ms of virtual time, so a loaded disk cannot make virtual time run out.
    if (steps % Math.max(1, Math.round(100 / stepMs)) === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  if (!settled) throw new Error(`operation did not settle within ${limitMs} ms of virtual time`);
  return observed;
}
