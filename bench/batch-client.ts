/**
 * Load generator driven batch by batch, for comparisons on a busy machine where the two sides must
 * alternate closely: each stdin line `PORT COUNT CONCURRENCY` connects COUNT times to 127.0.0.1:PORT,
 * CONCURRENCY at a time, each connect waiting for the handshake and the server's verdict window before
 * it closes (as bench/client.ts does), and prints one JSON line: { rate, p50Ms, errors }.
 */
import { createInterface } from 'node:readline';
import { connectPool } from './connect-pool.js';

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const [port, count, concurrency] = line.trim().split(/\s+/).map(Number);
  const { latencies, errors, rate } = await connectPool('127.0.0.1', port!, count!, concurrency!);
  process.stdout.write(`${JSON.stringify({ rate, p50Ms: latencies[Math.floor(latencies.length / 2)] ?? NaN, errors })}\n`);
}
