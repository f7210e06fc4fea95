/**
 * Freezes a before-mode firmware and times what the kernel does without it, from inside the
 * firmware's network namespace:
 *
 *   stop-probe.ts PID HOST PORT open      SIGSTOP, then connect until a handshake completes (fail-open)
 *   stop-probe.ts PID HOST PORT verdict   SIGSTOP, then read the port's `reusable` set until it is empty
 *
 * Each connect attempt gives up after ATTEMPT_MS: a SYN sent before the liveness element lapsed waits
 * in the queue of the stopped process, and only a new SYN can show that the port is open. Each read of
 * the set runs nft, which takes a while on a busy machine. Either way the change lies between the
 * start of the last try that did not see it and the end of the first that did: `ms` is the middle of
 * that span, `spanMs` its width. Sends SIGCONT before it exits, and prints one JSON line:
 * { ms, spanMs } from the SIGSTOP.
 */
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';

const ATTEMPT_MS = 10;
const GIVE_UP_MS = 10_000;

const [pidText = '', host = '127.0.0.1', portText = '0', what = 'open'] = process.argv.slice(2);
const pid = Number(pidText);
const port = Number(portText);

function handshake(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ATTEMPT_MS);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function verdictHeld(): boolean {
  const listing = execFileSync('nft', ['-j', 'list', 'set', 'inet', `handcheck_${port}`, 'reusable'], { encoding: 'utf8' });
  return listing.includes('"elem"');
}

process.kill(pid, 'SIGSTOP');
const stopped = performance.now();
try {
  let passed = false;
  let before = 0;
  let after = 0;
  while (!passed && performance.now() - stopped < GIVE_UP_MS) {
    const start = performance.now() - stopped;
    passed = what === 'open' ? await handshake() : !verdictHeld();
    after = performance.now() - stopped;
    if (!passed) before = start;
  }
  if (!passed) throw new Error(`${what}: nothing changed within ${GIVE_UP_MS} ms of SIGSTOP`);
  process.stdout.write(`${JSON.stringify({ ms: (before + after) / 2, spanMs: after - before })}\n`);
} finally {
  process.kill(pid, 'SIGCONT');
}
