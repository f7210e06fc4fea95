/**
 * Before mode's price: connect latency and connection rate through the NFQUEUE gate with a reused
 * verdict, against the same firmware on the same port in after mode (no SYN rules), measured in one
 * run inside a network namespace (root only).
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Netns, ROOT, whyNotRunnable } from '../test/before/netns.js';

const exec = promisify(execFile);
type Report = (what: string, value: string, target: string, met: boolean | undefined) => void;

interface ClientFigures {
  rate: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
}

async function measure(ns: Netns, before: boolean): Promise<ClientFigures> {
  const port = 15020;
  const firmware: ChildProcess = ns.spawn(process.execPath, [
    `${ROOT}/dist/app/handcheck.js`,
    'run',
    ...(before ? ['--before', 'modbus'] : []),
    '--listen',
    `modbus=127.0.0.1:${port}`,
    '--control',
    '',
    '--log-level',
    'warn',
  ]);
  await new Promise<void>((resolve, reject) => {
    let text = '';
    firmware.stderr!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('listening on')) resolve();
    });
    firmware.once('exit', (code) => reject(new Error(`firmware exited with ${code}: ${text}`)));
  });
  // One held connection keeps the verdict reusable for the whole run (claim 5).
  const holder = ns.spawn(process.execPath, ['-e', `require('node:net').connect(${port}, '127.0.0.1').on('error', () => {}); setInterval(() => {}, 1000)`]);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const { stdout } = await exec('ip', ['netns', 'exec', ns.name, process.execPath, '--import', 'tsx', `${ROOT}/bench/client.ts`, '127.0.0.1', String(port), '5000', '16'], { cwd: ROOT });
  holder.kill('SIGKILL');
  const exited = new Promise((resolve) => firmware.once('exit', resolve));
  firmware.kill('SIGTERM');
  await exited;
  return JSON.parse(stdout) as ClientFigures;
}

export async function beforeModeBench(report: Report): Promise<void> {
  const why = whyNotRunnable();
  if (why) {
    report('before mode: added connect latency', `not measured: ${why}`, 'p50 <= 100 us', undefined);
    return;
  }
  const ns = await Netns.create('bench');
  try {
    const runs: Array<{ before: ClientFigures; after: ClientFigures }> = [];
    for (let round = 0; round < 3; round++) runs.push({ after: await measure(ns, false), before: await measure(ns, true) });
    const added = runs.map((r) => (r.before.p50Ms - r.after.p50Ms) * 1000).sort((a, b) => a - b)[1]!;
    const ratio = runs.map((r) => r.before.rate / r.after.rate).sort((a, b) => a - b)[1]!;
    const last = runs[runs.length - 1]!;
    if (runs.some((r) => r.before.errors || r.after.errors)) throw new Error(`connect errors: ${JSON.stringify(runs)}`);
    report(
      'before mode: added connect latency, reused verdict',
      `p50 +${added.toFixed(0)} us (median of 3; last round p50 ${(last.before.p50Ms * 1000).toFixed(0)} us vs ${(last.after.p50Ms * 1000).toFixed(0)} us without the rule)`,
      'p50 <= 100 us',
      added <= 100,
    );
    report(
      'before mode: connection rate vs the same port without the rule',
      `${ratio.toFixed(2)}x (last round ${last.before.rate.toFixed(0)}/s vs ${last.after.rate.toFixed(0)}/s)`,
      '>= 0.4x',
      ratio >= 0.4,
    );
  } finally {
    await ns.destroy();
  }
}
