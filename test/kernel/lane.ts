/**
 * `npm run test:kernel`: the real backends against real kernel drivers. Boots Debian's kernel under
 * QEMU (TCG; no KVM needed) with a busybox initramfs built here, shares the host's root read-only over
 * 9p so the guest runs this very tree with the host's Node, and runs test/kernel/suite inside as root.
 * gpio-sim, which Debian builds no module of, is built here from linux-source against the kernel's
 * headers (test/kernel/gpio-sim.ts) and loaded by the guest.
 * The last act of the first boot is the firmware stopped with SIGSTOP with i6300esb armed
 * (test/kernel/starve.ts): the host must see QEMU's watchdog reset the VM, and the second boot runs
 * test/kernel/after-reset.
 *
 * Host side of the wires the guest tests use:
 * - ttyS1 (0x2f8, IRQ 3) reaches the sim's Modbus RTU meter, run here on QEMU's chardev socket
 *   (test/kernel/meter.ts);
 * - eth0 (virtio-net) is a tap in a network namespace of the lane's own, made here and removed at the
 *   end, where the tap has 10.0.2.2 and the remote client (test/kernel/remote-client.ts) connects to
 *   the guest's 10.0.2.15 as a client on the network would. QEMU runs in that namespace (its tap is
 *   made there). Not QEMU's user networking: slirp answers the host's connect itself and turns the
 *   guest's RST into a FIN;
 * - ttyS2 is a control line: the guest writes `set_link on|off` and the host answers `ok` once QEMU
 *   flipped the virtio-net link (QMP set_link), or `error ...`; `meter silent|answer` mutes the meter
 *   or lets it answer again; `client probe HOST:PORT` has the remote client connect once, answered
 *   `ok RESULT ERRNO` with monitor/probe.ts's classification (the guest repeats it until the result it
 *   waits for comes, test/kernel/in-guest.ts `remoteClientSees`).
 *
 * Prints the guest's console, then a summary with the figures test/kernel/i2c-cost.ts measured in the
 * VM; exits 0 only when every phase ran and passed.
 * `npm run test:kernel -- FILTER...` runs only the suite files matching the vitest filters, without
 * the watchdog reset (for working on one suite).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { type Socket, createServer } from 'node:net';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import type { ProbeOutcome } from '../../monitor/probe.js';
import { buildGpioSim } from './gpio-sim.js';
import { LaneSetupError, buildInitramfs } from './initramfs.js';
import { LaneMeter } from './meter.js';
import { Qmp } from './qmp.js';

const filters = process.argv.slice(2);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cache = join(root, '.cache', 'kernel-lane');
const state = join(cache, 'state');
/** The lane's network namespace, the tap to the guest's eth0 in it, and the tap's address (guest.sh routes via it). */
const netns = `hclane-${process.pid}`;
const tap = 'hclane0';
const tapAddress = '10.0.2.2/24';
/**
 * The whole lane: a healthy run took 11 minutes under TCG on a 2-core machine at load 15, and 20 at
 * load 20 (the suite alone 14); this only stops a hung VM. It is the one time limit on the suites'
 * waits for the remote client, which end on the result or on the server under test exiting.
 */
const laneTimeoutMs = 35 * 60_000;

function onPath(tool: string): string | undefined {
  return (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, tool)).find((path) => existsSync(path));
}

/** The newest Debian 6.x amd64 kernel in /boot, or HANDCHECK_LANE_KERNEL (a vmlinuz path). */
function findKernel(): { vmlinuz: string; release: string; modulesDir: string } {
  const chosen =
    process.env.HANDCHECK_LANE_KERNEL ??
    readdirSync('/boot')
      .filter((name) => /^vmlinuz-6\.\d+.*-amd64$/.test(name))
      .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
      .map((name) => join('/boot', name))
      .pop();
  if (!chosen) throw new LaneSetupError('no Debian 6.x kernel in /boot: install the Debian package linux-image-6.12-amd64');
  const release = chosen.split('/').pop()?.replace(/^vmlinuz-/, '') ?? '';
  const modulesDir = join('/lib/modules', release);
  if (!existsSync(join(modulesDir, 'modules.dep'))) throw new LaneSetupError(`${modulesDir}/modules.dep is missing: reinstall the kernel package of ${chosen}`);
  return { vmlinuz: chosen, release, modulesDir };
}

function requireTools(): string {
  const missing: string[] = [];
  if (!onPath('qemu-system-x86_64')) missing.push('qemu-system-x86_64 (Debian package qemu-system-x86)');
  if (!onPath('xz')) missing.push('xz (Debian package xz-utils)');
  if (!onPath('modprobe')) missing.push('modprobe (Debian package kmod)');
  if (!onPath('ip')) missing.push('ip (Debian package iproute2)');
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun (the tun module) for the tap to the guest');
  const busybox = '/bin/busybox';
  if (!existsSync(busybox)) missing.push('/bin/busybox (Debian package busybox-static)');
  if (missing.length > 0) throw new LaneSetupError(`the kernel lane needs ${missing.join(', ')}`);
  return busybox;
}

interface Outcome {
  setupFailure?: string;
  suiteExit?: number;
  /** The exit of test/kernel/i2c-cost.ts, and the figures it printed. */
  measureExit?: number;
  measured: string[];
  starving: boolean;
  watchdogReset: boolean;
  afterResetExit?: number;
  resets: number;
  summaries: string[];
  /** The last request on the control line and what the host answered, for a VM that hung. */
  lastControl?: string;
}

/**
 * QEMU connects to the lane (its chardevs are clients), so nothing here waits for a socket file to
 * appear: the servers listen before QEMU starts, and resolve with QEMU's connection.
 */
async function listenOnce(path: string): Promise<{ connection: Promise<Socket>; close: () => void }> {
  rmSync(path, { force: true });
  const server = createServer();
  const connection = new Promise<Socket>((resolveConnection) =>
    server.once('connection', (socket: Socket) => {
      // QEMU powering off or resetting the guest may end a chardev with unread bytes (ECONNRESET): the
      // lane's verdict comes from the guest's exits and QMP events, so the socket's error is only told.
      socket.on('error', (err: NodeJS.ErrnoException) => console.log(`handcheck-lane(host): ${basename(path)}: ${err.code ?? err.message}`));
      resolveConnection(socket);
    }),
  );
  await new Promise<void>((resolveListen) => server.listen(path, resolveListen));
  return { connection, close: () => server.close() };
}

/** The remote client in the lane's namespace; one probe at a time, in order. */
class RemoteClient {
  private readonly waiting: Array<{ resolve: (outcome: ProbeOutcome) => void; reject: (err: Error) => void }> = [];
  private readonly child: ChildProcess;

  constructor() {
    this.child = spawn('ip', ['netns', 'exec', netns, process.execPath, '--import', 'tsx', join(root, 'test', 'kernel', 'remote-client.ts')], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.waiting.shift()?.resolve(JSON.parse(line) as ProbeOutcome));
    this.child.once('exit', (code) => {
      for (const waiter of this.waiting.splice(0)) waiter.reject(new Error(`the remote client exited with ${code}`));
    });
  }

  probe(host: string, port: number): Promise<ProbeOutcome> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin!.write(`${host} ${port}\n`);
    });
  }

  /** One connect, its result told in the lane's output; answered `RESULT ERRNO` (`-` for none). */
  async once(host: string, port: number): Promise<string> {
    const outcome = await this.probe(host, port);
    console.log(`handcheck-lane(host): remote client to ${host}:${port}: ${outcome.result}${outcome.errno ? ` (${outcome.errno})` : ''}`);
    return `${outcome.result} ${outcome.errno ?? '-'}`;
  }

  close(): void {
    this.child.kill();
  }
}

function serveControl(socket: Socket, qmp: Qmp, meter: LaneMeter, remote: RemoteClient, outcome: Outcome): void {
  const reply = (line: string, said: string): void => {
    outcome.lastControl = `${JSON.stringify(line)}, answered ${JSON.stringify(said)}`;
    socket.write(`${said}\n`);
  };
  createInterface({ input: socket }).on('line', (line) => {
    outcome.lastControl = `${JSON.stringify(line)}, not answered yet`;
    const answer = (done: Promise<unknown>): void => {
      done.then(
        (detail) => reply(line, typeof detail === 'string' ? `ok ${detail}` : 'ok'),
        (err: Error) => reply(line, `error ${err.message}`),
      );
    };
    const link = /^set_link (on|off)$/.exec(line.trim());
    if (link) return answer(qmp.execute('set_link', { name: 'net0', up: link[1] === 'on' }));
    const mute = /^meter (silent|answer)$/.exec(line.trim());
    if (mute) {
      meter.silent = mute[1] === 'silent';
      return answer(Promise.resolve());
    }
    const client = /^client probe ([\d.]+):(\d+)$/.exec(line.trim());
    if (client) return answer(remote.once(client[1]!, Number(client[2])));
    reply(line, `error unknown request ${JSON.stringify(line)}`);
  });
}

/** One lane per tree at a time: a second one would pull the state directory from under the first. */
function lock(): void {
  const file = join(cache, 'lane.pid');
  mkdirSync(cache, { recursive: true });
  const holder = existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : Number.NaN;
  if (Number.isInteger(holder) && holder !== process.pid && existsSync(`/proc/${holder}`)) {
    throw new LaneSetupError(`another kernel lane (pid ${holder}) is running on ${root}`);
  }
  writeFileSync(file, `${process.pid}\n`);
}

async function run(): Promise<Outcome> {
  const busybox = requireTools();
  const kernel = findKernel();
  lock();
  rmSync(state, { recursive: true, force: true });
  mkdirSync(state, { recursive: true });
  writeFileSync(join(state, 'phase'), filters.length > 0 ? 'only\n' : 'suite\n');
  writeFileSync(join(state, 'filters'), `${filters.join(' ')}\n`);
  copyFileSync(buildGpioSim(kernel.release, join(cache, 'gpio-sim')), join(state, 'gpio-sim.ko'));
  const initrd = join(cache, 'initramfs.cpio');
  buildInitramfs({ modulesDir: kernel.modulesDir, busybox, projectDir: root, stateDir: state, out: initrd });
  try {
    execFileSync('ip', ['netns', 'add', netns], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new LaneSetupError(`cannot make the lane's network namespace ${netns}: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`);
  }
  const removeNetns = (): void => {
    try {
      execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  };
  // A lane stopped by a signal still removes its namespace.
  process.once('exit', removeNetns);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  try {
    return await runVm(kernel.vmlinuz, initrd);
  } finally {
    removeNetns();
  }
}

/** The namespace's side of the tap QEMU made there: 10.0.2.2, the guest's gateway (guest.sh). */
function raiseTap(): void {
  for (const args of [['link', 'set', 'lo', 'up'], ['addr', 'add', tapAddress, 'dev', tap], ['link', 'set', tap, 'up']]) {
    try {
      execFileSync('ip', ['-n', netns, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      throw new LaneSetupError(`ip -n ${netns} ${args.join(' ')}: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`);
    }
  }
}

async function runVm(vmlinuz: string, initrd: string): Promise<Outcome> {
  const qmpServer = await listenOnce(join(cache, 'qmp.sock'));
  const controlServer = await listenOnce(join(cache, 'control.sock'));
  const meterServer = await listenOnce(join(cache, 'meter.sock'));

  const args = [
    '-M', 'q35', '-m', '1536', '-smp', '2', '-nographic', '-no-user-config', '-nodefaults',
    '-kernel', vmlinuz, '-initrd', initrd,
    '-append', 'console=ttyS0 panic=-1 loglevel=4 rdinit=/init',
    '-serial', 'mon:stdio',
    '-chardev', `socket,id=meter,path=${join(cache, 'meter.sock')}`, '-device', 'isa-serial,chardev=meter,index=1',
    // IRQ 5, free on q35: index 2's default, IRQ 4, is ttyS0's, and QEMU does not OR two devices'
    // levels on one ISA line.
    '-chardev', `socket,id=control,path=${join(cache, 'control.sock')}`, '-device', 'isa-serial,chardev=control,index=2,irq=5',
    '-chardev', `socket,id=qmp,path=${join(cache, 'qmp.sock')}`, '-mon', 'chardev=qmp,mode=control',
    '-device', 'i6300esb', '-watchdog-action', 'reset',
    '-netdev', `tap,id=net0,ifname=${tap},script=no,downscript=no`, '-device', 'virtio-net-pci,netdev=net0',
    '-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot',
    '-fsdev', `local,id=lanestate,path=${state},security_model=none`,
    '-device', 'virtio-9p-pci,fsdev=lanestate,mount_tag=lanestate',
  ];
  // `ip netns exec` execs QEMU in the lane's namespace: the tap is made there, and the pid is QEMU's.
  const qemu = spawn('ip', ['netns', 'exec', netns, 'qemu-system-x86_64', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const outcome: Outcome = { starving: false, watchdogReset: false, resets: 0, summaries: [], measured: [] };
  const exited = new Promise<number | null>((resolveExit) => qemu.once('exit', (code) => resolveExit(code)));
  qemu.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));

  const early = exited.then((code) => {
    throw new LaneSetupError(`QEMU exited with ${code} before it connected its QMP monitor`);
  });
  const qmp = await Promise.race([qmpServer.connection.then((socket) => Qmp.over(socket)), early]);
  const control = await Promise.race([controlServer.connection, early]);
  const meter = new LaneMeter(await Promise.race([meterServer.connection, early]));
  early.catch(() => undefined);
  qmpServer.close();
  controlServer.close();
  meterServer.close();
  // QMP answers once QEMU is up, so its netdevs - the tap - exist by now.
  try {
    raiseTap();
  } catch (err) {
    qemu.kill('SIGKILL');
    throw err;
  }
  const remote = new RemoteClient();
  qmp.on('event', (event) => {
    if (event.event === 'WATCHDOG') {
      console.log(`handcheck-lane(host): QEMU watchdog event ${JSON.stringify(event.data)}`);
      if (outcome.starving && event.data?.action === 'reset') outcome.watchdogReset = true;
    }
    if (event.event === 'RESET') {
      outcome.resets += 1;
      if (!outcome.watchdogReset) {
        outcome.setupFailure ??= 'the VM was reset before the watchdog phase (a kernel panic?)';
        qemu.kill('SIGKILL');
      }
    }
  });
  serveControl(control, qmp, meter, remote, outcome);

  createInterface({ input: qemu.stdout }).on('line', (raw) => {
    const line = raw.replace(/\r$/, '');
    process.stdout.write(`${line}\n`);
    // vitest's summary lines, without the colours
    const plain = stripVTControlCharacters(line);
    if (/^\s*(Test Files|Tests|Duration)\s/.test(plain)) outcome.summaries.push(plain.trim());
    const marker = /handcheck-lane: (\S+) ?(.*)$/.exec(plain);
    if (!marker) return;
    const [, what, rest = ''] = marker;
    if (what === 'setup-failed') outcome.setupFailure ??= rest;
    if (what === 'suite-exit') outcome.suiteExit = Number(rest);
    if (what === 'measured') outcome.measured.push(rest);
    if (what === 'measure-exit') outcome.measureExit = Number(rest);
    if (what === 'after-reset-exit') outcome.afterResetExit = Number(rest);
    if (what === 'starving') outcome.starving = true;
  });

  const timer = setTimeout(() => {
    const last = outcome.lastControl === undefined ? '' : ` (the last request on the control line: ${outcome.lastControl})`;
    outcome.setupFailure ??= `the VM did not finish within ${laneTimeoutMs / 60_000} minutes${last}`;
    qemu.kill('SIGKILL');
  }, laneTimeoutMs);
  const code = await exited;
  clearTimeout(timer);
  qmp.close();
  remote.close();
  if (code !== 0 && outcome.setupFailure === undefined) {
    outcome.setupFailure = `QEMU exited with ${code}`;
  }
  return outcome;
}

const started = Date.now();
let outcome: Outcome;
try {
  outcome = await run();
} catch (err) {
  if (!(err instanceof LaneSetupError)) throw err;
  console.error(`kernel lane: ${err.message}`);
  process.exit(2);
}
const problems: string[] = [];
if (outcome.setupFailure) problems.push(`setup failed: ${outcome.setupFailure}`);
if (outcome.suiteExit !== 0) problems.push(outcome.suiteExit === undefined ? 'the suite did not run' : `the suite failed (exit ${outcome.suiteExit})`);
if (filters.length === 0 && outcome.measureExit !== 0) {
  problems.push(outcome.measureExit === undefined ? 'the I2C cost measurement did not run' : `the I2C cost measurement failed (exit ${outcome.measureExit})`);
}
if (filters.length === 0 && !outcome.watchdogReset) problems.push('the host saw no watchdog reset of the VM after the firmware was stopped');
if (filters.length === 0 && outcome.afterResetExit !== 0) {
  problems.push(outcome.afterResetExit === undefined ? 'the after-reset phase did not run' : `the after-reset phase failed (exit ${outcome.afterResetExit})`);
}
console.log('\n== kernel lane ==');
for (const line of outcome.summaries) console.log(`  ${line}`);
for (const line of outcome.measured) console.log(`  ${line}`);
console.log(`  watchdog reset seen by the host: ${outcome.watchdogReset ? 'yes' : 'no'}`);
console.log(`  duration: ${((Date.now() - started) / 1000).toFixed(0)} s`);
for (const problem of problems) console.log(`  FAILED: ${problem}`);
process.exit(problems.length === 0 ? 0 : 1);
