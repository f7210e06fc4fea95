/**
 * The connect loop of the accept-rate load generator (bench/client.ts): `count` connects to
 * HOST:PORT, `concurrency` at a time, each waiting for the handshake and the server's verdict window
 * before it closes.
 */
import { connect } from 'node:net';

export interface PoolResult {
  /** Connect latencies in ms, sorted. */
  latencies: number[];
  errors: number;
  errorCodes: Record<string, number>;
  rate: number;
}

function once(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host, port, noDelay: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      const latency = performance.now() - started;
      socket.end();
      socket.once('close', () => resolve(latency));
      socket.resume();
    });
  });
}

export async function connectPool(host: string, port: number, count: number, concurrency: number): Promise<PoolResult> {
  const latencies: number[] = [];
  const errorCodes: Record<string, number> = {};
  let errors = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        try {
          latencies.push(await once(host, port));
        } catch (err) {
          errors++;
          const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
          errorCodes[code] = (errorCodes[code] ?? 0) + 1;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { latencies, errors, errorCodes, rate: count / seconds };
}

/** The latency at quantile `q` of sorted `latencies`. */
export function pick(latencies: readonly number[], q: number): number {
  return latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
}
