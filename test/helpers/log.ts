/** Loggers for tests: silent, or writing to a sink the test reads (as pino's own tests do). */
import { Writable } from 'node:stream';
import { pino } from 'pino';

export const silent = pino({ level: 'silent' });

export interface LogSink {
  logger: pino.Logger;
  /** Every line written so far, parsed. */
  lines(): Record<string, unknown>[];
  /** Lines that carry an `action` (the gate's decisions). */
  decisions(): Record<string, unknown>[];
}

export function logSink(level: pino.Level = 'debug'): LogSink {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = pino({ level }, stream);
  const lines = (): Record<string, unknown>[] =>
    chunks
      .join('')
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, decisions: () => lines().filter((line) => 'action' in line) };
}
