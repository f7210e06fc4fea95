/**
 * Load generator for the accept-rate benchmark, run as its own process so that client work does not
 * share the server's event loop: connects `total` times to HOST:PORT, `concurrency` at a time, waits
 * for each connection to be established and for the server's verdict window, then closes it.
 * Prints one JSON line: { rate, errors, errorCodes, p50Ms, p99Ms }.
 */
import { connect } from 'node:net';

const [host = '127.0.0.1', portText = '0', totalText = '10000', concurrencyText = '32'] = process.argv.slice(2);
const port = Number(portText);
const total = Number(totalText);
const concurrency = Number(concurrencyText);

function once(): Promise<number> {
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

const latencies: number[] = [];
let errors = 0;
const errorCodes: Record<string, number> = {};
let next = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < total) {
      next++;
      try {
        latencies.push(await once());
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
const pick = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
process.stdout.write(`${JSON.stringify({ rate: total / seconds, errors, errorCodes, p50Ms: pick(0.5), p99Ms: pick(0.99) })}\n`);
