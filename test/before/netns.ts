/**
 * Network namespaces for the before-mode suites: each suite makes its own (loopback up, optionally a
 * veth pair to a client namespace with addresses from the benchmarking range 198.18.0.0/15 and the
 * documentation prefix 2001:db8::/32), runs the fixture server and clients inside them with
 * `ip netns exec`, reads their iptables rules, captures packets with tcpdump, and deletes everything
 * in afterAll. No traffic leaves the namespaces.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describeWhen, notRoot } from '../helpers/requirements.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SERVER = fileURLToPath(new URL('./fixture-server.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('./fixture-client.js', import.meta.url));
const ADDON = join(ROOT, 'native', 'build', 'Release', 'handcheck_nfqueue.node');

/** Why these suites cannot run here, or undefined when they can. */
export function whyNotRunnable(): string | undefined {
  const root = notRoot('before-mode suites (network namespaces, iptables, NFQUEUE)');
  if (root) return root;
  if (!existsSync(ADDON)) return `before-mode suites need the NFQUEUE addon built at ${ADDON} ("npm run build:native")`;
  return undefined;
}

/** A describe that runs as root with the addon built (see test/helpers/requirements.ts). */
export function describeAsRoot(name: string, body: () => void): void {
  describeWhen(whyNotRunnable(), name, body);
}

/**
 * Runs a command to completion. `timeoutMs` only turns a hang into a failure that says so: a command
 * that is slow on a loaded machine (a flash over ssh) passes a bound near its test's own timeout.
 */
export function run(command: string, args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err?.killed) reject(new Error(`${command} ${args.join(' ')} was killed after ${timeoutMs} ms without finishing: ${stderr}`));
      else if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

let counter = 0;

export class Netns {
  readonly name: string;
  private readonly children = new Set<ChildProcess>();

  private constructor(name: string) {
    this.name = name;
  }

  static async create(tag: string): Promise<Netns> {
    const ns = new Netns(`hc-${tag}-${process.pid}-${counter++}`);
    await run('ip', ['netns', 'add', ns.name]);
    await ns.exec('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  exec(command: string, args: string[], timeoutMs?: number): Promise<string> {
    return run('ip', ['netns', 'exec', this.name, command, ...args], timeoutMs);
  }

  spawn(command: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, command, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** The ports in set `set` of the before-mode table of `port`; undefined when there is no such table. */
  async setElements(port: number, set: 'alive' | 'reusable'): Promise<number[] | undefined> {
    let listing: string;
    try {
      listing = await this.exec('nft', ['-j', 'list', 'set', 'inet', `handcheck_${port}`, set]);
    } catch {
      return undefined;
    }
    const parsed = JSON.parse(listing) as { nftables: Array<{ set?: { elem?: Array<number | { elem: { val: number } }> } }> };
    const elems = parsed.nftables.find((entry) => entry.set !== undefined)?.set?.elem ?? [];
    return elems.map((e) => (typeof e === 'number' ? e : e.elem.val));
  }

  /** The handcheck rules in INPUT, as `iptables -S` prints them. */
  async rules(family: 4 | 6 = 4): Promise<string[]> {
    const listing = await this.exec(family === 4 ? 'iptables' : 'ip6tables', ['-w', '-S', 'INPUT']);
    return listing.split('\n').filter((line) => line.includes('handcheck:'));
  }

  async destroy(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    await run('ip', ['netns', 'del', this.name]).catch(() => undefined);
  }
}

export const SERVER_V4 = '198.18.0.1';
export const CLIENT_V4 = '198.18.0.2';
export const SERVER_V6 = '2001:db8::1';
export const CLIENT_V6 = '2001:db8::2';

/** Joins two namespaces with a veth pair: `server` gets the .1 addresses, `client` the .2 ones. */
export async function link(server: Netns, client: Netns): Promise<void> {
  const a = `hcs${counter}`;
  const b = `hcc${counter++}`;
  await run('ip', ['link', 'add', a, 'netns', server.name, 'type', 'veth', 'peer', 'name', b, 'netns', client.name]);
  for (const [ns, dev, v4, v6] of [
    [server, a, SERVER_V4, SERVER_V6],
    [client, b, CLIENT_V4, CLIENT_V6],
  ] as const) {
    await ns.exec('ip', ['addr', 'add', `${v4}/24`, 'dev', dev]);
    // nodad: usable at once instead of tentative for a second or two.
    await ns.exec('ip', ['-6', 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad']);
    await ns.exec('ip', ['link', 'set', dev, 'up']);
  }
}

export interface ServerConfig {
  host: string;
  port: number;
  policy: Record<string, unknown>;
  diagnosisTimeoutMs?: number;
  livenessMs?: number;
  gracefulSignals?: boolean;
}

type Event = Record<string, unknown> & { event: string };

/** The fixture server running in a namespace, driven through its stdin. */
export class FixtureServer {
  readonly child: ChildProcess;
  private readonly events: Event[] = [];
  private waiters: Array<{ match: (e: Event) => boolean; resolve: (e: Event) => void }> = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(ns: Netns, config: ServerConfig, env: Record<string, string> = {}, wrapper: string[] = []) {
    const node = ['node', '--import', 'tsx', SERVER, JSON.stringify(config)];
    const [command, ...args] = wrapper.length > 0 ? [...wrapper, ...node] : node;
    const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    this.child = envArgs.length > 0 ? ns.spawn('env', [...envArgs, command as string, ...args]) : ns.spawn(command as string, args);
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    const lines = createInterface({ input: this.child.stdout! });
    lines.on('line', (line) => {
      let event: Event;
      try {
        event = JSON.parse(line) as Event;
      } catch {
        return;
      }
      this.events.push(event);
      const ready = this.waiters.filter((w) => w.match(event));
      this.waiters = this.waiters.filter((w) => !w.match(event));
      for (const w of ready) w.resolve(event);
    });
  }

  /** The next event named `name` (or the first `listening`/`error` when starting). */
  next(names: string[], timeoutMs = 15_000): Promise<Event> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fixture server sent none of ${names.join(', ')} in ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      const exit = (): void => reject(new Error(`fixture server exited waiting for ${names.join(', ')}; stderr: ${this.stderr}`));
      this.child.once('exit', exit);
      this.waiters.push({
        match: (e) => names.includes(e.event),
        resolve: (e) => {
          clearTimeout(timer);
          this.child.off('exit', exit);
          resolve(e);
        },
      });
    });
  }

  /** Waits for the gate to listen; throws with the fixture's error otherwise. */
  async started(): Promise<Event> {
    const event = await this.next(['listening', 'error']);
    if (event.event === 'error') throw new Error(`fixture server failed: ${JSON.stringify(event)}`);
    return event;
  }

  async command(line: string, answer: string): Promise<Event> {
    const next = this.next([answer]);
    this.child.stdin?.write(`${line}\n`);
    return next;
  }

  stats(): Promise<Event> {
    return this.command('stats', 'stats');
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

export interface ClientResult {
  outcome: string;
  ms: number;
  greeting?: string;
}

export async function connectFrom(ns: Netns, config: { host: string; port: number; count?: number; timeoutMs?: number; holdMs?: number }): Promise<ClientResult[]> {
  const out = await ns.exec('node', ['--import', 'tsx', CLIENT, JSON.stringify(config)], 20_000 + (config.holdMs ?? 0));
  return (JSON.parse(out) as { results: ClientResult[] }).results;
}

export interface ClientConfig {
  host: string;
  port: number;
  count?: number;
  timeoutMs?: number;
  holdMs?: number;
  /** Connected once the handshake completes, without waiting for the greeting (as `nc -z`). */
  handshake?: boolean;
}

/**
 * The fixture client kept running in a namespace: its connects start when asked, not after a Node.js
 * process has started (a few hundred ms on a busy machine), so tests can act inside short windows.
 */
export class ClientSession {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, (results: ClientResult[]) => void>();
  private next = 0;
  private closed = false;
  private readonly ready: Promise<void>;

  constructor(ns: Netns) {
    this.child = ns.spawn('node', ['--import', 'tsx', CLIENT, 'session']);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const { id, results } = JSON.parse(line) as { id: number; results: ClientResult[] };
      this.pending.get(id)?.(results);
      this.pending.delete(id);
    });
    // A connect to nowhere proves the process has started and reads its stdin.
    this.ready = this.connect({ host: '127.0.0.1', port: 9, timeoutMs: 1 }).then(() => undefined);
  }

  started(): Promise<void> {
    return this.ready;
  }

  connect(config: ClientConfig): Promise<ClientResult[]> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      // After close() nobody waits for the answers any more.
      const exit = (): void => {
        if (!this.closed) reject(new Error('the client session exited'));
      };
      this.child.once('exit', exit);
      this.pending.set(id, (results) => {
        this.child.off('exit', exit);
        resolve(results);
      });
      this.child.stdin?.write(`${JSON.stringify({ id, ...config })}\n`);
    });
  }

  close(): void {
    this.closed = true;
    this.child.kill('SIGKILL');
  }
}

export function outcomes(results: ClientResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
  return counts;
}

/** tcpdump in a namespace, writing to a file; `stop()` returns the decoded packets, one line each. */
export class Capture {
  private readonly child: ChildProcess;
  private readonly file: string;
  private readonly dir: string;
  private readonly ready: Promise<void>;

  private constructor(ns: Netns, dir: string, iface: string, filter: string) {
    this.dir = dir;
    this.file = join(dir, 'capture.pcap');
    this.child = ns.spawn('tcpdump', ['-i', iface, '--immediate-mode', '-U', '-n', '-w', this.file, filter]);
    this.ready = new Promise((resolve, reject) => {
      let err = '';
      this.child.stderr?.on('data', (chunk: Buffer) => {
        err += chunk.toString();
        if (err.includes('listening on')) resolve();
      });
      this.child.once('exit', () => reject(new Error(`tcpdump exited: ${err}`)));
    });
  }

  static async start(ns: Netns, iface: string, filter: string): Promise<Capture> {
    const capture = new Capture(ns, await mkdtemp(join(tmpdir(), 'hc-capture-')), iface, filter);
    await capture.ready;
    return capture;
  }

  async stop(): Promise<string[]> {
    // Let the last packets reach the file before tcpdump is told to finish.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGINT');
    await exited;
    const text = await run('tcpdump', ['-n', '-r', this.file]);
    await rm(this.dir, { recursive: true, force: true });
    return text.split('\n').filter((line) => line.length > 0);
  }
}

/** Packets of a decoded capture sent from `port` with both SYN and ACK set: the server's SYN/ACKs. */
export function synAcksFrom(packets: string[], port: number): string[] {
  return packets.filter((line) => new RegExp(`\\.${port} > .*Flags \\[S\\.\\]`).test(line));
}

/** Packets of a decoded capture sent to `port` with only SYN set. */
export function synsTo(packets: string[], port: number): string[] {
  return packets.filter((line) => new RegExp(`> \\S+\\.${port}: Flags \\[S\\]`).test(line));
}

export function resetsFrom(packets: string[], port: number): string[] {
  return packets.filter((line) => new RegExp(`\\.${port} > .*Flags \\[R\\.?\\]`).test(line));
}
