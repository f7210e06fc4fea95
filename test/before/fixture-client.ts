/**
 * Opens connections at once from inside a network namespace and reports how each ended, as a client
 * sees it: `connected` (with the first line the application sent), an errno code (`ECONNREFUSED` when
 * the SYN was answered with RST), or `timeout` when the SYN got no answer at all. With `holdMs`, a
 * connection that got its greeting is kept open that long: `held` if it stayed up, else how it ended.
 * With `handshake`, a connection counts as `connected` once the handshake completes, greeting or not
 * (what `nc -z` checks).
 *
 *   node --import tsx fixture-client.ts '{"host":"198.18.0.1","port":7000,"count":100,"timeoutMs":3000}'
 *
 * Prints one JSON object: `{ "results": [{ "outcome", "ms", "greeting" }] }`.
 *
 *   node --import tsx fixture-client.ts session
 *
 * keeps running instead, so that a test's connects do not wait for a process to start: each stdin line
 * `{"id":N,...config}` runs like the above, concurrently with the others, and prints
 * `{"id":N,"results":[...]}` when done.
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import type { ClientConfig, ClientResult as Result } from './netns.js';


function once(config: ClientConfig): Promise<Result> {
  const timeoutMs = config.timeoutMs ?? 3000;
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host: config.host, port: config.port });
    let settled = false;
    const finish = (outcome: string, greeting?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ outcome, ms: Math.round(performance.now() - started), ...(greeting === undefined ? {} : { greeting }) });
    };
    let timer = setTimeout(() => finish(socket.connecting ? 'timeout' : 'connected-silent'), timeoutMs);
    if (config.handshake) socket.once('connect', () => finish('connected'));
    socket.setEncoding('utf8');
    let greeting: string | undefined;
    socket.on('data', (data: string) => {
      if (greeting !== undefined) return;
      greeting = data.trim();
      if (config.holdMs === undefined) {
        finish('connected', greeting);
        return;
      }
      clearTimeout(timer);
      timer = setTimeout(() => finish('held', greeting), config.holdMs);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(greeting === undefined ? (err.code ?? err.message) : `connected-then-${err.code}`, greeting));
    socket.on('end', () => finish('connected-ended', greeting));
  });
}

function all(config: ClientConfig): Promise<Result[]> {
  return Promise.all(Array.from({ length: config.count ?? 1 }, () => once(config)));
}

if (process.argv[2] === 'session') {
  createInterface({ input: process.stdin }).on('line', (line) => {
    const { id, ...config } = JSON.parse(line) as ClientConfig & { id: number };
    void all(config).then((results) => process.stdout.write(`${JSON.stringify({ id, results })}\n`));
  });
} else {
  const results = await all(JSON.parse(process.argv[2] ?? '{}') as ClientConfig);
  process.stdout.write(`${JSON.stringify({ results })}\n`);
}
