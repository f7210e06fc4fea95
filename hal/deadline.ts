import type { Clock } from './clock.js';
import { HalClosedError, HalTimeoutError } from './errors.js';

export interface DeadlineOptions {
  /** Milliseconds on `clock` before the operation fails with ERR_HAL_TIMEOUT. */
  timeoutMs: number;
  /** Aborting fails the operation with ERR_HAL_CLOSED and `canceled: true`. */
  signal?: AbortSignal | undefined;
}

/**
 * Races `operation` against a deadline on `clock` and an optional abort signal. The operation itself
 * is not interrupted (a kernel transfer cannot be): its late result is dropped and a late rejection is
 * swallowed, so a hung transfer fails its caller on time and never crashes the process later.
 */
export function withDeadline<T>(
  clock: Clock,
  operation: Promise<T>,
  what: string,
  target: string,
  { timeoutMs, signal }: DeadlineOptions,
): Promise<T> {
  if (signal?.aborted) {
    operation.catch(() => undefined);
    return Promise.reject(new HalClosedError(`${what} on ${target} canceled`, { target, canceled: true }));
  }
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    /** True the first time: the deadline and the abort listener are let go of, and the caller settles. */
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      timer.cancel();
      signal?.removeEventListener('abort', onAbort);
      return true;
    };
    const onAbort = (): void => {
      if (settle()) reject(new HalClosedError(`${what} on ${target} canceled`, { target, canceled: true }));
    };
    const timer = clock.setTimeout(() => {
      if (settle()) reject(new HalTimeoutError(`${what} on ${target} timed out after ${timeoutMs} ms`, { target }));
    }, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    operation.then(
      (value) => {
        if (settle()) resolve(value);
      },
      (err: unknown) => {
        if (settle()) reject(err);
      },
    );
  });
}

/**
 * Waits for `operation` only while `signal` has not aborted; aborting fails the wait with
 * ERR_HAL_CLOSED and `canceled: true`. The operation goes on (others may share it); a late
 * rejection is swallowed.
 */
export function whileWanted<T>(operation: Promise<T>, signal: AbortSignal, what: string, target: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      operation.catch(() => undefined);
      reject(new HalClosedError(`${what} on ${target} canceled`, { target, canceled: true }));
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    operation.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
