/**
 * Runs the built `handcheck` command as users run it: a real process, real ports, real signals.
 */
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const cli = fileURLToPath(new URL('../../dist/app/handcheck.js', import.meta.url));
const exec = promisify(execFile);

export interface Firmware {
  process: ChildProcessWithoutNullStreams;
  port: number;
  control: string;
  /** Everything the process wrote to stdout so far (pino JSON lines). */
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startFirmware(args: string[] = []): Promise<Firmware> {
  const child = spawn(process.execPath, [cli, 'run', '--listen', 'modbus=127.0.0.1:0', '--control', '127.0.0.1:0', ...args]);
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const ready = await new Promise<{ port: number; control: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`firmware did not start: ${err}`)), 15_000);
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      const port = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
      const control = /control endpoint on http:\/\/([\d.]+:\d+)/.exec(err);
      if (port && control) {
        clearTimeout(timer);
        resolve({ port: Number(port[1]), control: control[1]! });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`firmware exited with ${code}: ${err}`));
    });
  });
  return {
    process: child,
    ...ready,
    logs: () => out,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill(signal);
      }),
  };
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `handcheck ARGS...` to completion. */
export async function handcheck(...args: string[]): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [cli, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Runs any program to completion, never rejecting on a non-zero exit. */
export async function program(file: string, args: string[]): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await exec(file, args);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number | string; stdout: string; stderr: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}
