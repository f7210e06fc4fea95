/**
 * Load generator driven batch by batch, for comparisons on a busy machine where the two sides must
 * alternate closely: each stdin line `PORT COUNT CONCURRENCY` connects COUNT times to 127.0.0.1:PORT,
 * CONCURRENCY at a time, each connect waiting for the handshake and the server's verdict window before
 * it closes (as bench/client.ts does), and prints one JSON line: { rate, p50Ms, errors }.
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

function once(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      const latency = performance.now() - started;
      socket.end();
      socket.once('close', () => resolve(latency));
      socket.resume();
    });
  });
}

async function batch(port: number, count: number, concurrency: number): Promise<{ rate: number; p50Ms: number; errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        try {
          latencies.push(await once(port));
        } catch {
          errors++;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { rate: count / seconds, p50Ms: latencies[Math.floor(latencies.length / 2)] ?? NaN, errors };
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const [port, count, concurrency] = line.trim().split(/\s+/).map(Number);
  process.stdout.write(`${JSON.stringify(await batch(port!, count!, concurrency!))}\n`);
}
