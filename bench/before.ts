/**
 * Before mode's price and its behaviour when the firmware freezes, measured inside a network namespace
 * (root only):
 * - connect latency and connection rate with a reused verdict - which the kernel holds, so no SYN
 *   goes to user space. One firmware serves two copies of the Modbus service: `modbus` in before mode
 *   (its nftables chain and iptables rules) and `reference` in after mode, without rules, each with a
 *   connection held, so both reuse a verdict and run the same code after accept. One client alternates
 *   single connects between the two ports, so that each pair is measured moments apart and a busy
 *   machine's drift cancels in the pair's difference. The reference port's packets also walk the
 *   gated port's rules (netfilter hooks are per namespace) and miss them, and the two ports may differ
 *   by themselves, so the firmware's rules are taken out and put back in alternate blocks: the added
 *   latency is the median of the pairs' differences with the rules, less the same without them, with a
 *   95% bootstrap interval; the rate the same way, from windows in which clients load both ports at once;
 * - SIGSTOP -> the port fails open (a handshake completes with the firmware still stopped), and
 *   SIGSTOP -> the kernel's reusable verdict lapses, both bounded by the liveness timeout (500 ms).
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { Netns, ROOT, whyNotRunnable } from '../test/before/netns.js';
import { until } from '../test/helpers/wait.js';
import { type Estimate, bootstrap, median } from './bootstrap.js';

const exec = promisify(execFile);
type Report = (what: string, value: string, target: string, met: boolean | undefined) => void;

const PORT = 15020;
const REFERENCE_PORT = 15021;
/** Blocks alternate with and without the rules, in the order in, out, out, in, ...: a linear drift cancels. */
const BLOCKS = 16;
const PAIRS_PER_BLOCK = 500;
const RATE_WINDOWS_PER_BLOCK = 2;
const RATE_WINDOW_MS = 1000;
/** Clients per port in a rate window. */
const RATE_CONCURRENCY = 8;

/** Per condition, the samples of every block: single-connect times (us) and burst rates (/s), gated port `a`, reference `b`. */
interface Condition {
  latency: { a: number[]; b: number[] };
  rate: { a: number[]; b: number[] };
}

/** The shipped boards file with the sim appliance's Modbus service doubled as `reference`. */
async function boardsWithReference(dir: string): Promise<string> {
  const file = JSON.parse(await readFile(join(ROOT, 'boards.json'), 'utf8')) as { boards: Array<{ id: string; services: Array<{ id: string; listen: string }> }> };
  const appliance = file.boards.find((board) => board.id === 'sim-appliance')!;
  appliance.services.push({ ...appliance.services[0]!, id: 'reference', listen: `127.0.0.1:${REFERENCE_PORT}` });
  const path = join(dir, 'boards.json');
  await writeFile(path, JSON.stringify(file));
  return path;
}

async function startFirmware(ns: Netns, extra: string[] = []): Promise<ChildProcess> {
  const firmware: ChildProcess = ns.spawn(process.execPath, [
    `${ROOT}/dist/app/handcheck.js`,
    'run',
    '--before',
    'modbus',
    '--listen',
    `modbus=127.0.0.1:${PORT}`,
    ...extra,
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
function holdConnection(ns: Netns, port = PORT): ChildProcess {
  return ns.spawn(process.execPath, ['-e', `require('node:net').connect(${port}, '127.0.0.1').on('error', () => {}); setInterval(() => {}, 1000)`]);
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

async function measure(ns: Netns): Promise<{ rules: Condition; none: Condition }> {
  const dir = await mkdtemp(join(tmpdir(), 'hc-bench-before-'));
  const firmware = await startFirmware(ns, ['--boards', await boardsWithReference(dir)]);
  const holders = [holdConnection(ns), holdConnection(ns, REFERENCE_PORT)];
  const client = ns.spawn(process.execPath, ['--import', 'tsx', `${ROOT}/bench/pair-client.ts`]);
  const answers = createInterface({ input: client.stdout! })[Symbol.asyncIterator]();
  const ask = async (line: string): Promise<{ a: number[]; b: number[] }> => {
    client.stdin!.write(`${line}\n`);
    const answer = await answers.next();
    if (answer.done) throw new Error('bench: the pair client exited');
    return JSON.parse(answer.value as string) as { a: number[]; b: number[] };
  };
  const empty = (): Condition => ({ latency: { a: [], b: [] }, rate: { a: [], b: [] } });
  const result = { rules: empty(), none: empty() };
  try {
    await until(async () => (await ns.setElements(PORT, 'reusable'))?.length === 1, 'the kernel holding the verdict');
    const rules = await ruleSwitch(ns, dir);
    let on = true;
    for (let block = 0; block < BLOCKS; block++) {
      const wanted = block % 4 === 0 || block % 4 === 3;
      if (wanted !== on) {
        await (wanted ? rules.on() : rules.off());
        on = wanted;
      }
      const into = on ? result.rules : result.none;
      const latency = await ask(`pairs ${PORT} ${REFERENCE_PORT} ${PAIRS_PER_BLOCK}`);
      const rate = await ask(`mixed ${PORT} ${REFERENCE_PORT} ${RATE_WINDOWS_PER_BLOCK} ${RATE_WINDOW_MS} ${RATE_CONCURRENCY}`);
      into.latency.a.push(...latency.a);
      into.latency.b.push(...latency.b);
      into.rate.a.push(...rate.a);
      into.rate.b.push(...rate.b);
    }
  } finally {
    client.kill('SIGKILL');
    for (const holder of holders) holder.kill('SIGKILL');
    await stopFirmware(firmware);
    await rm(dir, { recursive: true, force: true });
  }
  return result;
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
    const { rules, none } = await measure(ns);
    const differences = ({ latency }: Condition): number[] => latency.a.map((a, i) => a - latency.b[i]!);
    const ratios = ({ rate }: Condition): number[] => rate.a.map((a, i) => a / rate.b[i]!);
    const withRules = differences(rules);
    const without = differences(none);
    const added = bootstrap([withRules, without], ([w, o]) => median(w!) - median(o!));
    const versusReference = bootstrap([withRules], ([w]) => median(w!));
    const rate = bootstrap([ratios(rules), ratios(none)], ([w, o]) => median(w!) / median(o!));
    const signed = (value: number): string => `${value >= 0 ? '+' : ''}${value.toFixed(1)}`;
    const interval = (e: Estimate, unit: string, format: (v: number) => string): string => `${format(e.value)} ${unit} (95% CI ${format(e.low)} to ${format(e.high)})`;
    const p50 = (values: number[]): string => `${median(values).toFixed(0)} us`;
    report(
      'before mode: added connect latency, reused verdict held in the kernel, vs the same firmware without the rules',
      `p50 ${interval(added, 'us', signed)}: median of ${withRules.length} paired differences (gated port - reference port) with the rules, ${interval(versusReference, 'us', signed)}, less that of ${without.length} without them; p50 ${p50(rules.latency.a)} vs ${p50(rules.latency.b)} with, ${p50(none.latency.a)} vs ${p50(none.latency.b)} without`,
      'p50 <= 10 us',
      added.high <= 10,
    );
    report(
      'before mode: connection rate, same comparison',
      `${interval(rate, 'x', (v) => v.toFixed(3))}: median rate ratio (gated / reference) of ${rules.rate.a.length} windows of ${RATE_WINDOW_MS} ms with ${RATE_CONCURRENCY} clients on each port at once, with the rules, over that of ${none.rate.a.length} without; with the rules ${median(rules.rate.a).toFixed(0)}/s vs ${median(rules.rate.b).toFixed(0)}/s`,
      '>= 0.95x',
      rate.value >= 0.95,
    );
    const open = await frozen(ns, 'open', 5);
    report('before mode: SIGSTOP -> the port fails open (a handshake completes; liveness timeout 500 ms)', stopFigures(open), '<= 1 s', open.times.at(-1)! <= 1000);
    const verdict = await frozen(ns, 'verdict', 5);
    report("before mode: SIGSTOP -> the kernel's reusable verdict lapses (a connection held)", stopFigures(verdict), '<= 1 s', verdict.times.at(-1)! <= 1000);
  } finally {
    await ns.destroy();
  }
}
