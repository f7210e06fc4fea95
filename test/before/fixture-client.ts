/**
 * Opens connections at once from inside a network namespace and reports how each ended, as a client
 * sees it: `connected` (with the first line the application sent), an errno code (`ECONNREFUSED` when
 * the SYN was answered with RST), or `timeout` when the SYN got no answer at all. With `holdMs`, a
 * connection that got its greeting is kept open that long: `held` if it stayed up, else how it ended.
 *
 *   node --import tsx fixture-client.ts '{"host":"198.18.0.1","port":7000,"count":100,"timeoutMs":3000}'
 *
 * Prints one JSON object: `{ "results": [{ "outcome", "ms", "greeting" }] }`.
 */
import { connect } from 'node:net';

interface ClientConfig {
  host: string;
  port: number;
  count?: number;
  timeoutMs?: number;
  holdMs?: number;
}

interface Result {
  outcome: string;
  ms: number;
  greeting?: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ClientConfig;
const timeoutMs = config.timeoutMs ?? 3000;

function once(): Promise<Result> {
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

const results = await Promise.all(Array.from({ length: config.count ?? 1 }, () => once()));
process.stdout.write(`${JSON.stringify({ results })}\n`);
