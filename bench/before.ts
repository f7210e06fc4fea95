/**
 * Before mode's price and its behaviour when the firmware freezes, measured inside a network namespace
 * (root only):
 * - connect latency and connection rate with a reused verdict - which the kernel holds, so no SYN
 *   goes to user space - against the same firmware on the same port in after mode (no SYN rules);
 * - SIGSTOP -> the port fails open (a handshake completes with the firmware still stopped), and
 *   SIGSTOP -> the kernel's reusable verdict lapses, both bounded by the liveness timeout (500 ms).
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

const PORT = 15020;

async function startFirmware(ns: Netns, before: boolean): Promise<ChildProcess> {
  const firmware: ChildProcess = ns.spawn(process.execPath, [
    `${ROOT}/dist/app/handcheck.js`,
    'run',
    ...(before ? ['--before', 'modbus'] : []),
    '--listen',
    `modbus=127.0.0.1:${PORT}`,
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
  return firmware;
}

async function stopFirmware(firmware: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => firmware.once('exit', resolve));
  firmware.kill('SIGCONT');
  firmware.kill('SIGTERM');
  await exited;
}

/** One held connection keeps the verdict reusable (claim 5). */
function holdConnection(ns: Netns): ChildProcess {
  return ns.spawn(process.execPath, ['-e', `require('node:net').connect(${PORT}, '127.0.0.1').on('error', () => {}); setInterval(() => {}, 1000)`]);
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`bench: ${what} did not happen within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function measure(ns: Netns, before: boolean): Promise<ClientFigures> {
  const firmware = await startFirmware(ns, before);
  const holder = holdConnection(ns);
  if (before) await until('the kernel holding the verdict', async () => (await ns.setElements(PORT, 'reusable'))?.length === 1);
  else await new Promise((resolve) => setTimeout(resolve, 300));
  const { stdout } = await exec('ip', ['netns', 'exec', ns.name, process.execPath, '--import', 'tsx', `${ROOT}/bench/client.ts`, '127.0.0.1', String(PORT), '5000', '16'], { cwd: ROOT });
  holder.kill('SIGKILL');
  await stopFirmware(firmware);
  return JSON.parse(stdout) as ClientFigures;
}

/** `rounds` SIGSTOPs of one firmware, each timed by bench/stop-probe.ts; the firmware is resumed after each. */
interface Frozen {
  /** Sorted times from SIGSTOP, ms. */
  times: number[];
  /** The widest uncertainty of one of them, ms. */
  spanMs: number;
}

async function frozen(ns: Netns, what: 'open' | 'verdict', rounds: number): Promise<Frozen> {
  const firmware = await startFirmware(ns, true);
  const holder = what === 'verdict' ? holdConnection(ns) : undefined;
  const times: number[] = [];
  let spanMs = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      await until('the liveness element', async () => (await ns.setElements(PORT, 'alive'))?.length === 1);
      if (holder) await until('the kernel holding the verdict', async () => (await ns.setElements(PORT, 'reusable'))?.length === 1);
      // Stops land anywhere between two liveness refreshes.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 200));
      const { stdout } = await exec('ip', ['netns', 'exec', ns.name, process.execPath, '--import', 'tsx', `${ROOT}/bench/stop-probe.ts`, String(firmware.pid), '127.0.0.1', String(PORT), what], { cwd: ROOT });
      const probe = JSON.parse(stdout) as { ms: number; spanMs: number };
      times.push(probe.ms);
      spanMs = Math.max(spanMs, probe.spanMs);
    }
  } finally {
    holder?.kill('SIGKILL');
    await stopFirmware(firmware);
  }
  return { times: times.sort((a, b) => a - b), spanMs };
}

function stopFigures({ times, spanMs }: Frozen): string {
  return `median ${times[Math.floor(times.length / 2)]!.toFixed(0)} ms, worst ${times[times.length - 1]!.toFixed(0)} ms of ${times.length} (each +-${(spanMs / 2).toFixed(0)} ms or better)`;
}

export async function beforeModeBench(report: Report): Promise<void> {
  const why = whyNotRunnable();
  if (why) {
    report('before mode: added connect latency', `not measured: ${why}`, 'p50 <= 10 us', undefined);
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
      'before mode: added connect latency, reused verdict held in the kernel',
      `p50 ${added >= 0 ? '+' : ''}${added.toFixed(0)} us (median of 3; last round p50 ${(last.before.p50Ms * 1000).toFixed(0)} us vs ${(last.after.p50Ms * 1000).toFixed(0)} us without the rules)`,
      'p50 <= 10 us',
      added <= 10,
    );
    report(
      'before mode: connection rate vs the same port without the rules',
      `${ratio.toFixed(2)}x (last round ${last.before.rate.toFixed(0)}/s vs ${last.after.rate.toFixed(0)}/s)`,
      '>= 0.95x',
      ratio >= 0.95,
    );

    const open = await frozen(ns, 'open', 5);
    report('before mode: SIGSTOP -> the port fails open (a handshake completes; liveness timeout 500 ms)', stopFigures(open), '<= 1 s', open.times.at(-1)! <= 1000);
    const verdict = await frozen(ns, 'verdict', 5);
    report("before mode: SIGSTOP -> the kernel's reusable verdict lapses (a connection held)", stopFigures(verdict), '<= 1 s', verdict.times.at(-1)! <= 1000);
  } finally {
    await ns.destroy();
  }
}
