/**
 * Before mode's price and its behaviour when the firmware freezes, measured inside a network namespace
 * (root only):
 * - connect latency and connection rate with a reused verdict - which the kernel holds, so no SYN
 *   goes to user space - against the same firmware and port with the rules taken out (its sockets then
 *   reuse the verdict after accept, as in after mode), in alternating batches of one client process so
 *   that a busy machine's swings hit both sides alike;
 * - SIGSTOP -> the port fails open (a handshake completes with the firmware still stopped), and
 *   SIGSTOP -> the kernel's reusable verdict lapses, both bounded by the liveness timeout (500 ms).
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { Netns, ROOT, whyNotRunnable } from '../test/before/netns.js';
import { until } from '../test/helpers/wait.js';

const exec = promisify(execFile);
type Report = (what: string, value: string, target: string, met: boolean | undefined) => void;

interface Batch {
  rate: number;
  p50Ms: number;
  errors: number;
}

interface Paired {
  /** Per pair of batches: with the rules / without. */
  ratios: number[];
  /** Per pair of batches: p50 with the rules - p50 without, ms. */
  addedP50Ms: number[];
  withRules: Batch[];
  without: Batch[];
}

const PORT = 15020;
const PAIRS = 10;
const PER_BATCH = 1000;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function startFirmware(ns: Netns): Promise<ChildProcess> {
  const firmware: ChildProcess = ns.spawn(process.execPath, [
    `${ROOT}/dist/app/handcheck.js`,
    'run',
    '--before',
    'modbus',
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

/** Takes the firmware's iptables rules and nftables chain out and puts them back, as they were. */
async function ruleSwitch(ns: Netns, dir: string): Promise<{ off: () => Promise<void>; on: () => Promise<void> }> {
  const rules = await ns.rules(4);
  const chain = join(dir, 'chain.nft');
  const remove = join(dir, 'remove.rules');
  const add = join(dir, 'add.rules');
  const transaction = (lines: string[]): string => `*filter\n${lines.join('\n')}\nCOMMIT\n`;
  await writeFile(chain, await ns.exec('nft', ['list', 'chain', 'inet', `handcheck_${PORT}`, 'syn']));
  await writeFile(remove, transaction(rules.map((rule) => `-D${rule.slice(2)}`)));
  await writeFile(add, transaction(rules));
  return {
    off: async () => {
      await ns.exec('iptables-restore', ['-w', '--noflush', remove]);
      await ns.exec('nft', ['delete', 'chain', 'inet', `handcheck_${PORT}`, 'syn']);
    },
    on: async () => {
      await ns.exec('nft', ['-f', chain]);
      await ns.exec('iptables-restore', ['-w', '--noflush', add]);
    },
  };
}

async function measure(ns: Netns): Promise<Paired> {
  const firmware = await startFirmware(ns);
  const holder = holdConnection(ns);
  const client = ns.spawn(process.execPath, ['--import', 'tsx', `${ROOT}/bench/batch-client.ts`]);
  const answers = createInterface({ input: client.stdout! })[Symbol.asyncIterator]();
  const batch = async (): Promise<Batch> => {
    client.stdin!.write(`${PORT} ${PER_BATCH} 16\n`);
    const answer = await answers.next();
    if (answer.done) throw new Error('bench: the batch client exited');
    return JSON.parse(answer.value as string) as Batch;
  };
  const paired: Paired = { ratios: [], addedP50Ms: [], withRules: [], without: [] };
  const dir = await mkdtemp(join(tmpdir(), 'hc-bench-rules-'));
  try {
    await until(async () => (await ns.setElements(PORT, 'reusable'))?.length === 1, 'the kernel holding the verdict');
    const rules = await ruleSwitch(ns, dir);
    for (let pair = 0; pair < PAIRS; pair++) {
      // Alternating which side goes first cancels a drift in the machine's load.
      let withRules: Batch;
      let without: Batch;
      if (pair % 2 === 0) {
        withRules = await batch();
        await rules.off();
        without = await batch();
        await rules.on();
      } else {
        await rules.off();
        without = await batch();
        await rules.on();
        withRules = await batch();
      }
      paired.withRules.push(withRules);
      paired.without.push(without);
      paired.ratios.push(withRules.rate / without.rate);
      paired.addedP50Ms.push(withRules.p50Ms - without.p50Ms);
    }
  } finally {
    client.kill('SIGKILL');
    holder.kill('SIGKILL');
    await stopFirmware(firmware);
    await rm(dir, { recursive: true, force: true });
  }
  return paired;
}

/** `rounds` SIGSTOPs of one firmware, each timed by bench/stop-probe.ts; the firmware is resumed after each. */
interface Frozen {
  /** Sorted times from SIGSTOP, ms. */
  times: number[];
  /** The widest uncertainty of one of them, ms. */
  spanMs: number;
}

async function frozen(ns: Netns, what: 'open' | 'verdict', rounds: number): Promise<Frozen> {
  const firmware = await startFirmware(ns);
  const holder = what === 'verdict' ? holdConnection(ns) : undefined;
  const times: number[] = [];
  let spanMs = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      await until(async () => (await ns.setElements(PORT, 'alive'))?.length === 1, 'the liveness element');
      if (holder) await until(async () => (await ns.setElements(PORT, 'reusable'))?.length === 1, 'the kernel holding the verdict');
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
    const paired = await measure(ns);
    const errors = [...paired.withRules, ...paired.without].reduce((sum, b) => sum + b.errors, 0);
    if (errors > 0) throw new Error(`connect errors: ${JSON.stringify(paired)}`);
    const added = median(paired.addedP50Ms) * 1000;
    const ratio = median(paired.ratios);
    const p50 = (batches: Batch[]): string => `${(median(batches.map((b) => b.p50Ms)) * 1000).toFixed(0)} us`;
    const rate = (batches: Batch[]): string => `${median(batches.map((b) => b.rate)).toFixed(0)}/s`;
    report(
      'before mode: added connect latency, reused verdict held in the kernel, vs the same port without the rules',
      `p50 ${added >= 0 ? '+' : ''}${added.toFixed(1)} us (median over ${PAIRS} alternating pairs of ${PER_BATCH}-connect batches; p50 ${p50(paired.withRules)} vs ${p50(paired.without)})`,
      'p50 <= 10 us',
      added <= 10,
    );
    report(
      'before mode: connection rate, same comparison',
      `${ratio.toFixed(2)}x (median over the pairs; ${rate(paired.withRules)} vs ${rate(paired.without)})`,
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
