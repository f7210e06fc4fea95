import type { VirtualClock } from '../../sim/clock.js';

/** Advances `clock` in `stepMs` steps until `promise` settles, then returns or throws its outcome. */
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
  for (let waited = 0; !settled && waited <= limitMs; waited += stepMs) await clock.advance(stepMs);
  if (!settled) throw new Error(`operation did not settle within ${limitMs} ms of virtual time`);
  return observed;
}
