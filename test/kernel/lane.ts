/**
 * `npm run test:kernel`: the real backends against real kernel drivers. Boots Debian's kernel under
 * QEMU (TCG; no KVM needed) with a busybox initramfs built here, shares the host's root read-only over
 * 9p so the guest runs this very tree with the host's Node, and runs test/kernel/suite inside as root.
 * gpio-sim, which Debian builds no module of, is built here from linux-source against the kernel's
 * headers (test/kernel/gpio-sim.ts) and loaded by the guest.
 * The last act of the first boot is a wedged firmware with i6300esb armed: the host must see QEMU's
 * watchdog reset the VM, and the second boot runs test/kernel/after-reset.
 *
 * Host side of the wires the guest tests use:
 * - ttyS1 (0x2f8, IRQ 3) reaches the sim's Modbus RTU meter, run here on QEMU's chardev socket
 *   (test/kernel/meter.ts);
 * - ttyS2 is a control line: the guest writes `set_link on|off` and the host answers `ok` once QEMU
 *   flipped the virtio-net link (QMP set_link), or `error ...`; `meter silent|answer` mutes the meter
 *   or lets it answer again.
 *
 * Prints the guest's console, then a summary; exits 0 only when every phase ran and passed.
 * `npm run test:kernel -- FILTER...` runs only the suite files matching the vitest filters, without
 * the watchdog reset (for working on one suite).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { type Socket, createServer } from 'node:net';
import { delimiter, dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { buildGpioSim } from './gpio-sim.js';
import { LaneSetupError, buildInitramfs } from './initramfs.js';
import { LaneMeter } from './meter.js';
import { Qmp } from './qmp.js';

const filters = process.argv.slice(2);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cache = join(root, '.cache', 'kernel-lane');
const state = join(cache, 'state');
/** The whole lane: a healthy run took 11 minutes under TCG on a loaded 2-core machine; this only stops a hung VM. */
const laneTimeoutMs = 20 * 60_000;

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
  const busybox = '/bin/busybox';
  if (!existsSync(busybox)) missing.push('/bin/busybox (Debian package busybox-static)');
  if (missing.length > 0) throw new LaneSetupError(`the kernel lane needs ${missing.join(', ')}`);
  return busybox;
}

interface Outcome {
  setupFailure?: string;
  suiteExit?: number;
  starving: boolean;
  watchdogReset: boolean;
  afterResetExit?: number;
  resets: number;
  summaries: string[];
}

/**
 * QEMU connects to the lane (its chardevs are clients), so nothing here waits for a socket file to
 * appear: the servers listen before QEMU starts, and resolve with QEMU's connection.
 */
async function listenOnce(path: string): Promise<{ connection: Promise<Socket>; close: () => void }> {
  rmSync(path, { force: true });
  const server = createServer();
  const connection = new Promise<Socket>((resolveConnection) => server.once('connection', resolveConnection));
  await new Promise<void>((resolveListen) => server.listen(path, resolveListen));
  return { connection, close: () => server.close() };
}

function serveControl(socket: Socket, qmp: Qmp, meter: LaneMeter): void {
  const answer = (done: Promise<unknown>): void => {
    done.then(
      () => socket.write('ok\n'),
      (err: Error) => socket.write(`error ${err.message}\n`),
    );
  };
  createInterface({ input: socket }).on('line', (line) => {
    const link = /^set_link (on|off)$/.exec(line.trim());
    if (link) return answer(qmp.execute('set_link', { name: 'net0', up: link[1] === 'on' }));
    const mute = /^meter (silent|answer)$/.exec(line.trim());
    if (mute) {
      meter.silent = mute[1] === 'silent';
      return answer(Promise.resolve());
    }
    socket.write(`error unknown request ${JSON.stringify(line)}\n`);
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
  const qmpServer = await listenOnce(join(cache, 'qmp.sock'));
  const controlServer = await listenOnce(join(cache, 'control.sock'));
  const meterServer = await listenOnce(join(cache, 'meter.sock'));

  const args = [
    '-M', 'q35', '-m', '1536', '-smp', '2', '-nographic', '-no-user-config', '-nodefaults',
    '-kernel', kernel.vmlinuz, '-initrd', initrd,
    '-append', 'console=ttyS0 panic=-1 loglevel=4 rdinit=/init',
    '-serial', 'mon:stdio',
    '-chardev', `socket,id=meter,path=${join(cache, 'meter.sock')}`, '-device', 'isa-serial,chardev=meter,index=1',
    // IRQ 5, free on q35: index 2's default, IRQ 4, is ttyS0's, and QEMU does not OR two devices'
    // levels on one ISA line.
    '-chardev', `socket,id=control,path=${join(cache, 'control.sock')}`, '-device', 'isa-serial,chardev=control,index=2,irq=5',
    '-chardev', `socket,id=qmp,path=${join(cache, 'qmp.sock')}`, '-mon', 'chardev=qmp,mode=control',
    '-device', 'i6300esb', '-watchdog-action', 'reset',
    '-netdev', 'user,id=net0', '-device', 'virtio-net-pci,netdev=net0',
    '-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot',
    '-fsdev', `local,id=lanestate,path=${state},security_model=none`,
    '-device', 'virtio-9p-pci,fsdev=lanestate,mount_tag=lanestate',
  ];
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const outcome: Outcome = { starving: false, watchdogReset: false, resets: 0, summaries: [] };
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
  serveControl(control, qmp, meter);

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
    if (what === 'after-reset-exit') outcome.afterResetExit = Number(rest);
    if (what === 'starving') outcome.starving = true;
  });

  const timer = setTimeout(() => {
    outcome.setupFailure ??= `the VM did not finish within ${laneTimeoutMs / 60_000} minutes`;
    qemu.kill('SIGKILL');
  }, laneTimeoutMs);
  const code = await exited;
  clearTimeout(timer);
  qmp.close();
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
if (filters.length === 0 && !outcome.watchdogReset) problems.push('the host saw no watchdog reset of the VM after the firmware wedged');
if (filters.length === 0 && outcome.afterResetExit !== 0) {
  problems.push(outcome.afterResetExit === undefined ? 'the after-reset phase did not run' : `the after-reset phase failed (exit ${outcome.afterResetExit})`);
}
console.log('\n== kernel lane ==');
for (const line of outcome.summaries) console.log(`  ${line}`);
console.log(`  watchdog reset seen by the host: ${outcome.watchdogReset ? 'yes' : 'no'}`);
console.log(`  duration: ${((Date.now() - started) / 1000).toFixed(0)} s`);
for (const problem of problems) console.log(`  FAILED: ${problem}`);
process.exit(problems.length === 0 ? 0 : 1);
