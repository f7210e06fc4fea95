/**
 * Timing a call many times over, and the cost of a null syscall (2 bytes from /dev/zero) made
 * synchronously and through libuv's worker pool as i2c-bus's asynchronous calls go: the yardstick that
 * scales the kernel lane's figures (TCG emulates every instruction) to the host they ran on. Used by
 * bench/i2c-overhead.ts on the host and test/kernel/i2c-cost.ts in the lane's VM.
 */
import { closeSync, openSync, read, readSync } from 'node:fs';

export const calls = 500;

export function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Each call's duration in us, `calls` calls one after another. */
export async function timed(each: () => unknown): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await each();
    samples.push((performance.now() - t) * 1000);
  }
  return samples;
}

/** A 2-byte read of /dev/zero through libuv's worker pool, as an asynchronous i2c-bus call is made. */
export function workerHop(fd: number, buffer: Buffer): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buffer, 0, 2, null, (err, n) => (err ? reject(err) : resolve(n))));
}

/** Medians in us of a null syscall, synchronous and through libuv's worker pool. */
export async function nullCosts(): Promise<{ syncUs: number; asyncUs: number }> {
  const fd = openSync('/dev/zero', 'r');
  const buffer = Buffer.alloc(2);
  try {
    const sync = await timed(() => readSync(fd, buffer, 0, 2, null));
    const async = await timed(() => workerHop(fd, buffer));
    return { syncUs: median(sync), asyncUs: median(async) };
  } finally {
    closeSync(fd);
  }
}
