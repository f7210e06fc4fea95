/**
 * Running the netfilter tools (iptables-restore, nft) for before mode: asynchronously while the gate
 * starts and stops, blocking on exit paths where no more event-loop turns will run. Each tool's module
 * says how a failure becomes its error.
 */
import { execFile, execFileSync } from 'node:child_process';

/** Turns a failed run of `command`, trying to `what`, into the caller's error. */
export type CommandError = (command: string, err: unknown, what: string) => Error;

const TIMEOUT_MS = 10_000;

export function runCommand(command: string, args: string[], input: string | undefined, what: string, toError: CommandError): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { encoding: 'utf8', timeout: TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(toError(command, Object.assign(err, { stderr }), what));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

export function runCommandSync(command: string, args: string[], input: string | undefined, what: string, toError: CommandError): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', timeout: TIMEOUT_MS, input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    throw toError(command, err, what);
  }
}

/** iptables' or nft's own complaint, or the error's message when the tool said nothing. */
export function commandDetail(err: unknown): string {
  const e = err as { stderr?: string | Buffer };
  const stderr = e.stderr === undefined ? '' : String(e.stderr).trim();
  return stderr || (err instanceof Error ? err.message : String(err));
}

export function isPermissionProblem(detail: string): boolean {
  return /permission denied|not permitted|you must be root/i.test(detail);
}
