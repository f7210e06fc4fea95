import { type ChildProcess, spawn } from 'node:child_process';

/** A linked pair of ptys from socat; returns their paths once socat has announced both. */
export function ptyPair(): Promise<{ proc: ChildProcess; a: string; b: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn('socat', ['-d', '-d', 'pty,raw,echo=0', 'pty,raw,echo=0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.once('error', reject);
    proc.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      const paths = [...log.matchAll(/PTY is (\S+)/g)].map((m) => m[1] as string);
      if (paths.length === 2 && log.includes('starting data transfer loop')) resolve({ proc, a: paths[0] as string, b: paths[1] as string });
    });
    proc.once('exit', (code) => reject(new Error(`socat exited with ${code}: ${log}`)));
  });
}
