/** Whether a command of this machine runs: `installed('haproxy', ['-v'])`. For tests and benches alike. */
import { execFileSync } from 'node:child_process';

export function installed(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
