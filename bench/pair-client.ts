/**
 * Load generator for paired comparisons of two ports, driven line by line on stdin so that the two
 * sides are measured moments apart and a busy machine's drift hits both alike:
 *
 *   pairs A B N                  N pairs of single connects, one to each port, in alternating order
 *                                (A then B, B then A, ...); prints { a, b }: each connect's time
 *                                from connect() to the handshake, in us
 *   mixed A B N MS CONC          N windows of MS ms in which CONC clients connect to A back to back
 *                                and CONC others to B, all at once, so that both ports share every
 *                                moment of the machine; prints { a, b }: each window's rate per port,
 *                                connects/s
 *
 * Every connect closes with FIN and waits for the server's, as bench/client.ts does.
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

function connectUs(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      const us = (performance.now() - started) * 1000;
      socket.once('close', () => resolve(us));
      socket.end();
      socket.resume();
    });
  });
}

async function alternate(a: number, b: number, n: number, one: (port: number) => Promise<number>): Promise<{ a: number[]; b: number[] }> {
  const result = { a: [] as number[], b: [] as number[] };
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) {
      result.a.push(await one(a));
      result.b.push(await one(b));
    } else {
      result.b.push(await one(b));
      result.a.push(await one(a));
    }
  }
  return result;
}

async function mixed(a: number, b: number, n: number, ms: number, concurrency: number): Promise<{ a: number[]; b: number[] }> {
  const result = { a: [] as number[], b: [] as number[] };
  for (let window = 0; window < n; window++) {
    const end = performance.now() + ms;
    const counts = { a: 0, b: 0 };
    const client = async (side: 'a' | 'b', port: number): Promise<void> => {
      while (performance.now() < end) {
        await connectUs(port);
        counts[side]++;
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: concurrency }, () => [client('a', a), client('b', b)]).flat());
    const seconds = (performance.now() - started) / 1000;
    result.a.push(counts.a / seconds);
    result.b.push(counts.b / seconds);
  }
  return result;
}

for await (const line of createInterface({ input: process.stdin })) {
  const [what, ...args] = line.trim().split(/\s+/);
  const [a, b, n, ms, concurrency] = args.map(Number) as [number, number, number, number?, number?];
  const result = what === 'pairs' ? await alternate(a, b, n, connectUs) : await mixed(a, b, n, ms!, concurrency!);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
