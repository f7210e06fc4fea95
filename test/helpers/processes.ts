/**
 * Processes as users run them: the built `handcheck` command (a real process, real ports, real
 * signals), and any program to completion.
 */
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { patientBoardsFile } from './boards.js';
import { waitForOutput } from './wait.js';

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

/** `handcheck run` on ports 0, with patient component deadlines unless `args` name a boards file. */
export async function startFirmware(args: string[] = []): Promise<Firmware> {
  const boards = args.includes('--boards') ? [] : ['--boards', patientBoardsFile()];
  const child = spawn(process.execPath, [cli, 'run', '--listen', 'modbus=127.0.0.1:0', '--control', '127.0.0.1:0', ...boards, ...args]);
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const [, port, control] = await waitForOutput(child, /listening on 127\.0\.0\.1:(\d+)[\s\S]*control endpoint on http:\/\/([\d.]+:\d+)/, 'firmware');
  return {
    process: child,
    port: Number(port),
    control: control!,
    logs: () => out,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
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
