/**
 * Waiting on events, never on time: a test waits for what it already set going (a socket to close, a
 * process to print a line), and the bound only turns a hang into a failure that names what it waited
 * for. Bounds are generous on purpose: a loaded machine is slow, not wrong.
 */
import type { ChildProcess } from 'node:child_process';

/** Waits until `condition` holds, checking after every turn of I/O. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, boundMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > boundMs) throw new Error(`timed out after ${boundMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * Resolves with the first match of `pattern` in what `child` wrote to stderr (and stdout, with
 * `stdout: true`) so far; rejects if the child exits first or nothing matches within `boundMs`.
 */
export function waitForOutput(child: ChildProcess, pattern: RegExp, what: string, options: { boundMs?: number; stdout?: boolean } = {}): Promise<RegExpExecArray> {
  const boundMs = options.boundMs ?? 30_000;
  const streams = [child.stderr, ...(options.stdout ? [child.stdout] : [])].filter((s) => s !== null);
  let text = '';
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      for (const stream of streams) stream.off('data', seen);
      child.off('exit', exited);
    };
    const seen = (chunk: Buffer): void => {
      text += chunk.toString();
      const match = pattern.exec(text);
      if (match) {
        done();
        resolve(match);
      }
    };
    const exited = (code: number | null, signal: string | null): void => {
      done();
      reject(new Error(`${what} exited (${signal ?? code}) before printing ${pattern}: ${text}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what}: nothing matched ${pattern} within ${boundMs} ms: ${text}`));
    }, boundMs);
    for (const stream of streams) stream.on('data', seen);
    child.once('exit', exited);
  });
}
