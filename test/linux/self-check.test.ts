/**
 * The start-up self-check against fake sysfs trees (Pi 4 and Pi 5 GPIO layouts, a BCM2835 watchdog
 * class directory) and device stand-in files; I2C identities through the real drivers on the sim
 * board's register-level chips, with NACK and wrong-identity faults injected there. The last suite
 * runs `handcheck check` as an unprivileged user to see permission failures as a user would.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BoardConfig } from '../../config/board-config.js';
import { loadBoards, selectBoard } from '../../config/boards.js';
import { LinuxBoard } from '../../hal/linux/board.js';
import { type SelfCheckReport, type SelfCheckRow, formatSelfCheck, selfCheck } from '../../app/self-check.js';
import { SimBoard } from '../../sim/board.js';
import { type FakeChip, makeGpioTree, makeTempDir, pi4Chips, pi5Chips } from './fake-sysfs.js';
import { describeAsRoot } from './root.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist', 'app', 'handcheck.js');
const boards = await loadBoards(join(ROOT, 'boards.json'));

let temp: Awaited<ReturnType<typeof makeTempDir>>;
let sim: SimBoard | undefined;

/** The sim board standing in for the Pi, its clock following real time as a Pi's does: I2C transfers take their wire time. */
function simBoard(config: BoardConfig): SimBoard {
  const board = new SimBoard(config);
  board.clock.startRealtime(1);
  return board;
}

beforeEach(async () => {
  temp = await makeTempDir('self-check');
});
afterEach(async () => {
  sim?.clock.stopRealtime();
  await sim?.close();
  sim = undefined;
  await temp.remove();
});

/** The stock entry with its device paths moved to stand-in files in the temp dir. */
async function entry(id: string, changes: { timeoutS?: number } = {}): Promise<BoardConfig> {
  const stock = selectBoard(boards, id);
  const dev = join(temp.dir, 'dev');
  await mkdir(dev, { recursive: true });
  for (const name of ['i2c-1', 'ttyAMA0', 'watchdog']) await writeFile(join(dev, name), '');
  return structuredClone({
    ...stock,
    i2c: stock.i2c?.map((bus) => ({ ...bus, device: join(dev, 'i2c-1') })),
    serial: stock.serial?.map((port) => ({ ...port, path: join(dev, 'ttyAMA0') })),
    watchdog: { ...stock.watchdog!, device: join(dev, 'watchdog'), ...(changes.timeoutS ? { timeoutS: changes.timeoutS } : {}) },
  });
}

async function watchdogClass(attributes: Record<string, string>): Promise<string> {
  const root = join(temp.dir, 'sys', 'class', 'watchdog');
  await mkdir(join(root, 'watchdog0'), { recursive: true });
  for (const [name, value] of Object.entries(attributes)) await writeFile(join(root, 'watchdog0', name), `${value}\n`);
  return root;
}

const bcm2835 = { identity: 'Broadcom BCM2835 Watchdog timer', timeout: '15', max_timeout: '15' };

/** A /proc with one process per entry, each holding the files named (as its fd links show them). */
async function procTree(processes: Array<{ pid: number; comm: string; files: string[] }>): Promise<string> {
  const root = join(temp.dir, 'proc');
  await mkdir(root, { recursive: true });
  for (const { pid, comm, files } of processes) {
    await mkdir(join(root, String(pid), 'fd'), { recursive: true });
    await writeFile(join(root, String(pid), 'comm'), `${comm}\n`);
    for (const [i, file] of files.entries()) await symlink(file, join(root, String(pid), 'fd', String(i + 3)));
  }
  return root;
}

async function check(
  config: BoardConfig,
  chips: FakeChip[] | undefined,
  watchdog: Record<string, string> = bcm2835,
  host: { procRoot?: string; systemdConfDir?: string } = {},
): Promise<SelfCheckReport> {
  const sys = join(temp.dir, 'sys');
  const gpioRoot = chips ? await makeGpioTree(sys, chips) : join(sys, 'class', 'gpio');
  const watchdogSysfsRoot = await watchdogClass(watchdog);
  sim = simBoard(config);
  return selfCheck({
    board: sim,
    gpioRoot,
    watchdogSysfsRoot,
    procRoot: host.procRoot ?? (await procTree([])),
    systemdConfDir: host.systemdConfDir ?? join(temp.dir, 'etc-systemd'),
  });
}

function row(report: SelfCheckReport, area: SelfCheckRow['area'], item: string): SelfCheckRow {
  const found = report.rows.find((r) => r.area === area && r.item === item);
  if (!found) throw new Error(`no ${area}/${item} row in:\n${formatSelfCheck(report)}`);
  return found;
}

describe('self-check on a Pi 4 layout', () => {
  it('resolves every line through label and base 512, identifies the chips, and reads the watchdog timeout', async () => {
    const report = await check(await entry('rpi4'), pi4Chips);
    expect(row(report, 'gpio', 'export')).toMatchObject({ status: 'ok', detail: '2 chips: pinctrl-bcm2711@512, raspberrypi-exp-gpio@570' });
    expect(row(report, 'gpio', 'power-good')).toMatchObject({
      status: 'ok',
      detail: 'pinctrl-bcm2711 GPIO17 (offset 17) on gpiochip512, base 512, ngpio 58 -> gpio529',
    });
    expect(row(report, 'gpio', 'status-led').detail).toMatch(/-> gpio539$/);
    expect(row(report, 'gpio', 'link-led').detail).toMatch(/-> gpio535$/);
    expect(row(report, 'i2c', 'i2c-1').status).toBe('ok');
    expect(row(report, 'i2c', 'board-temp')).toMatchObject({ status: 'ok', detail: 'tmp102 at 0x48: TMP102' });
    expect(row(report, 'i2c', 'ambient')).toMatchObject({ status: 'ok', detail: 'bme280 at 0x76: BME280' });
    expect(row(report, 'i2c', 'rail-5v')).toMatchObject({ status: 'ok', detail: 'ina219 at 0x40: INA219' });
    expect(row(report, 'serial', 'rs485').status).toBe('ok');
    expect(row(report, 'net', 'eth0')).toMatchObject({ status: 'ok', detail: 'carrier up, operstate up, 1000 Mb/s' });
    // The entry asks for 10 s; the BCM2835 runs with 15 s and Node cannot change it.
    const timeout = row(report, 'watchdog', 'timeout');
    expect(timeout.status).toBe('warn');
    expect(timeout.detail).toContain('requested 10 s, 15 s in force');
    expect([report.failed, report.warnings]).toEqual([0, 1]);
    const table = formatSelfCheck(report);
    expect(table.split('\n')[0]).toMatch(/^AREA +ITEM +STATUS +DETAIL$/);
    expect(table).toContain('self-check of rpi4: 0 failed, 1 warning, ');
  });

  it('reports an absent chip (NACK) and a wrong identity (a BMP280 where a BME280 belongs)', async () => {
    const config = await entry('rpi4');
    const sys = join(temp.dir, 'sys');
    const gpioRoot = await makeGpioTree(sys, pi4Chips);
    sim = simBoard(config);
    sim.faults.inject({ target: 'board-temp', kind: 'nack' });
    sim.faults.inject({ target: 'ambient', kind: 'wrong-identity' });
    const report = await selfCheck({ board: sim, gpioRoot, watchdogSysfsRoot: await watchdogClass(bcm2835) });
    const absent = row(report, 'i2c', 'board-temp');
    expect([absent.status, absent.code]).toEqual(['fail', 'ERR_HAL_NACK']);
    expect(absent.detail).toMatch(/^tmp102 at 0x48: absent, nothing acknowledges the address/);
    const wrong = row(report, 'i2c', 'ambient');
    expect([wrong.status, wrong.code]).toEqual(['fail', 'ERR_HAL_IDENTITY']);
    expect(wrong.detail).toContain('wrong identity');
    expect(wrong.detail).toContain('a BMP280');
    expect(row(report, 'i2c', 'rail-5v').status).toBe('ok');
    expect(report.failed).toBe(2);
  });

  it('warns when a line is already exported by someone else', async () => {
    const config = await entry('rpi4');
    const gpioRoot = await makeGpioTree(join(temp.dir, 'sys'), pi4Chips);
    await mkdir(join(gpioRoot, 'gpio529'));
    sim = simBoard(config);
    const report = await selfCheck({ board: sim, gpioRoot, watchdogSysfsRoot: await watchdogClass(bcm2835) });
    const line = row(report, 'gpio', 'power-good');
    expect(line.status).toBe('warn');
    expect(line.detail).toContain('gpio529; already exported');
  });

  it('says bcm2835_wdt refuses a timeout above 15 s with EINVAL instead of clamping it (bcm2835_wdt.c max_timeout; watchdog_dev.c watchdog_timeout_invalid)', async () => {
    const report = await check(await entry('rpi4', { timeoutS: 30 }), pi4Chips);
    expect(row(report, 'watchdog', 'timeout')).toMatchObject({
      status: 'warn',
      detail: 'refused: requested 30 s, the driver counts at most 15 s and refuses more with EINVAL (it does not clamp); 15 s stays in force; set timeoutS to 15 or less',
    });
  });

  it('never says "at most 0 s": a max_timeout of 0 (a driver with max_hw_heartbeat_ms) is no maximum, and a bcm2835 entry falls back to the driver\'s 15 s', async () => {
    const generic = await entry('rpi4', { timeoutS: 30 });
    generic.watchdog = { ...generic.watchdog!, driver: 'generic' };
    const report = await check(generic, pi4Chips, { identity: 'iTCO_wdt', timeout: '15', max_timeout: '0' });
    expect(formatSelfCheck(report)).not.toContain('at most 0 s');
    expect(row(report, 'watchdog', 'timeout').detail).toContain('requested 30 s, 15 s in force');
  });

  it('falls back to bcm2835_wdt\'s 15 s for a bcm2835 entry whose sysfs max_timeout reads 0', async () => {
    const pi = await check(await entry('rpi4', { timeoutS: 30 }), pi4Chips, { ...bcm2835, max_timeout: '0' });
    expect(row(pi, 'watchdog', 'timeout').detail).toContain('counts at most 15 s');
  });

  it('fails the watchdog when systemd holds it (RuntimeWatchdogSec), naming the setting and what to change', async () => {
    const confDir = join(temp.dir, 'etc-systemd');
    await mkdir(join(confDir, 'system.conf.d'), { recursive: true });
    await writeFile(join(confDir, 'system.conf'), '[Manager]\n#RuntimeWatchdogSec=off\n');
    await writeFile(join(confDir, 'system.conf.d', 'watchdog.conf'), '[Manager]\nRuntimeWatchdogSec=15\n');
    const procRoot = await procTree([
      { pid: 1, comm: 'systemd', files: ['/dev/null', '/dev/watchdog0'] },
      { pid: 742, comm: 'sshd', files: ['/dev/null'] },
    ]);
    const report = await check(await entry('rpi4'), pi4Chips, { ...bcm2835, state: 'active' }, { procRoot, systemdConfDir: confDir });
    const holder = row(report, 'watchdog', 'holder');
    expect(holder).toMatchObject({ status: 'fail', code: 'ERR_HAL_BUS_BUSY' });
    expect(holder.detail).toContain(`RuntimeWatchdogSec=15 in ${join(confDir, 'system.conf.d', 'watchdog.conf')}; pid 1 (systemd)`);
    expect(holder.detail).toContain('fails with EBUSY');
    expect(holder.detail).toContain('set RuntimeWatchdogSec=off');
  });

  it('fails the Modbus UART when it is the kernel console (/proc/consoles, console= on /proc/cmdline; kernel/printk/printk.c console_setup) or a getty runs on it, saying what to change', async () => {
    const procRoot = await procTree([{ pid: 700, comm: 'agetty', files: [] }]);
    await writeFile(join(procRoot, 'consoles'), 'tty1                 -WU (EC p  )    4:1\n');
    await writeFile(join(procRoot, 'cmdline'), 'coherent_pool=1M console=ttyAMA0,115200 console=tty1 root=PARTUUID=1 rootwait\n');
    await writeFile(join(procRoot, '700', 'cmdline'), ['/sbin/agetty', '-o', '-p -- \\u', '--keep-baud', '115200,57600,38400,9600', 'ttyAMA0', 'vt220', ''].join('\0'));
    const report = await check(await entry('rpi4'), pi4Chips, bcm2835, { procRoot });
    const serial = row(report, 'serial', 'rs485');
    expect(serial.status).toBe('fail');
    expect(serial.detail).toContain("ttyAMA0 is the kernel's console: remove console=ttyAMA0 (console=serial0 on a Pi) from the kernel command line (cmdline.txt) and reboot");
    expect(serial.detail).toContain('/sbin/agetty (pid 700) runs a login on ttyAMA0: systemctl disable --now serial-getty@ttyAMA0.service');
  });

  it('leaves the Modbus UART alone when the console and a getty are on another tty', async () => {
    const elsewhere = await procTree([{ pid: 701, comm: 'agetty', files: [] }]);
    await writeFile(join(elsewhere, 'consoles'), 'ttyS0                -W- (EC p a)    4:64\n');
    await writeFile(join(elsewhere, '701', 'cmdline'), ['/sbin/agetty', 'ttyS0', ''].join('\0'));
    expect(row(await check(await entry('rpi4'), pi4Chips, bcm2835, { procRoot: elsewhere }), 'serial', 'rs485').status).toBe('ok');
  });

  it('fails rtscts with RS-485 on one port, and a Pi UART RTS/CTS pin the entry also uses, naming what to change (amba-pl011.c pl011_set_termios; serial_core.c uart_handle_cts_change)', async () => {
    const config = await entry('rpi4');
    const port = config.serial![0]!;
    config.serial = [{ ...port, rtscts: true, rs485: { direction: 'kernel' } }];
    const report = await check(config, pi4Chips);
    expect(row(report, 'serial', 'rs485 rtscts')).toMatchObject({ status: 'fail', code: 'ERR_HAL_RS485_CONFLICT', detail: expect.stringContaining('remove rtscts from serial port rs485') });
    // power-good is on GPIO17, UART0's RTS (ALT3): the DE in the kernel's RS-485 mode.
    expect(row(report, 'serial', 'rs485 GPIO17')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/^ttyAMA0's RTS, the transceiver's DE in the kernel's RS-485 mode is GPIO17 \(header pin 11\), which the board entry also uses as power-good: move power-good to a free line/),
    });
  });

  it('fails rtscts alone on a Pi UART whose RTS pin the entry uses', async () => {
    const config = await entry('rpi4');
    const { rs485: _, ...port } = config.serial![0]!;
    config.serial = [{ ...port, rtscts: true }];
    const flow = await check(config, pi4Chips);
    expect(row(flow, 'serial', 'rs485 GPIO17').detail).toContain('RTS for hardware flow control');
    expect(flow.rows.some((r) => r.item === 'rs485 rtscts')).toBe(false);
  });

  it('passes the stock RS-485 port, whose DE is a GPIO line of its own (GPIO24), and says how DE is switched', async () => {
    const gpio = await check(await entry('rpi4'), pi4Chips);
    expect(gpio.rows.filter((r) => r.area === 'serial').map((r) => [r.item, r.status])).toEqual([['rs485', 'ok']]);
    expect(row(gpio, 'serial', 'rs485').detail).toContain('RS-485 with DE switched by GPIO line rs485-de');
    expect(row(gpio, 'gpio', 'rs485-de')).toMatchObject({ status: 'ok', detail: expect.stringContaining('GPIO24 (offset 24)') });
  });

  it('fails the watchdog held by another process', async () => {
    const held = await check(await entry('rpi4'), pi4Chips, bcm2835, { procRoot: await procTree([{ pid: 610, comm: 'watchdog', files: ['/dev/watchdog'] }]) });
    expect(row(held, 'watchdog', 'holder')).toMatchObject({ status: 'fail', detail: expect.stringContaining('held by pid 610 (watchdog)') });
  });

  it('warns of a RuntimeWatchdogSec that will take the watchdog at the next boot', async () => {
    const confDir = join(temp.dir, 'etc-systemd-2');
    await mkdir(confDir, { recursive: true });
    await writeFile(join(confDir, 'system.conf'), '[Manager]\nRuntimeWatchdogSec=1min\n');
    const later = await check(await entry('rpi4'), pi4Chips, bcm2835, { systemdConfDir: confDir });
    expect(row(later, 'watchdog', 'holder')).toMatchObject({ status: 'warn', detail: expect.stringContaining('RuntimeWatchdogSec=1min') });
  });

  it('is all ok when the timeout in force is the one requested', async () => {
    const report = await check(await entry('rpi4', { timeoutS: 15 }), pi4Chips);
    expect(row(report, 'watchdog', 'timeout')).toMatchObject({ status: 'ok', detail: '15 s in force, as requested' });
    expect([report.failed, report.warnings]).toEqual([0, 0]);
    expect(formatSelfCheck(report)).toMatch(/self-check of rpi4: all \d+ checks passed\n$/);
  });

  it('fails the watchdog when its sysfs attributes are unreadable, without opening the device', async () => {
    const config = await entry('rpi4');
    execFileSync('mkfifo', [join(temp.dir, 'wdt-fifo')]);
    // A FIFO with no reader would block an open for writing: the check finishing proves it never opened it.
    config.watchdog = { ...config.watchdog!, device: join(temp.dir, 'wdt-fifo') };
    const gpioRoot = await makeGpioTree(join(temp.dir, 'sys'), pi4Chips);
    sim = simBoard(config);
    const report = await selfCheck({ board: sim, gpioRoot, watchdogSysfsRoot: join(temp.dir, 'sys', 'class', 'watchdog') });
    const timeout = row(report, 'watchdog', 'timeout');
    expect([timeout.status, timeout.code]).toEqual(['fail', 'ERR_HAL_UNSUPPORTED']);
    expect(timeout.detail).toContain('CONFIG_WATCHDOG_SYSFS');
  });
});

describe('self-check on a Pi 5 layout', () => {
  it('resolves the rpi5 entry on pinctrl-rp1 at base 571', async () => {
    const report = await check(await entry('rpi5'), pi5Chips);
    expect(row(report, 'gpio', 'power-good')).toMatchObject({
      status: 'ok',
      detail: 'pinctrl-rp1 GPIO17 (offset 17) on gpiochip571, base 571, ngpio 54 -> gpio588',
    });
    expect(row(report, 'gpio', 'status-led').detail).toMatch(/-> gpio598$/);
  });

  it('names the right entry when the rpi4 entry runs on a Pi 5', async () => {
    const report = await check(await entry('rpi4'), pi5Chips);
    const line = row(report, 'gpio', 'power-good');
    expect([line.status, line.code]).toEqual(['fail', 'ERR_HAL_NOT_FOUND']);
    expect(line.detail).toContain('no GPIO chip labelled pinctrl-bcm2711');
    expect(line.detail).toContain('this machine has pinctrl-rp1: is the board entry rpi5 meant?');
    expect(report.rows.filter((r) => r.area === 'gpio' && r.status === 'fail')).toHaveLength(5);
  });
});

describe('self-check without sysfs GPIO and devices', () => {
  it('reports the missing GPIO class, adapter, port and watchdog device, each with its fix', async () => {
    const stock = selectBoard(boards, 'rpi-zero-2w');
    const missing = join(temp.dir, 'missing');
    const config: BoardConfig = structuredClone({
      ...stock,
      i2c: [{ id: 'i2c-1', device: join(missing, 'i2c-1'), timeoutMs: 50 }],
      serial: stock.serial?.map((port) => ({ ...port, path: join(missing, 'ttyAMA0') })),
      watchdog: { ...stock.watchdog!, device: join(missing, 'watchdog') },
    });
    const board = new LinuxBoard(config, { netRoot: join(temp.dir, 'net') });
    try {
      const report = await selfCheck({ board, gpioRoot: join(temp.dir, 'gpio'), watchdogSysfsRoot: await watchdogClass(bcm2835) });
      const gpio = row(report, 'gpio', join(temp.dir, 'gpio'));
      expect([gpio.status, gpio.code]).toEqual(['fail', 'ERR_HAL_UNSUPPORTED']);
      expect(gpio.detail).toContain('no sysfs GPIO interface (CONFIG_GPIO_SYSFS)');
      expect(row(report, 'i2c', 'i2c-1')).toMatchObject({ status: 'fail', code: 'ERR_HAL_NOT_FOUND' });
      expect(row(report, 'i2c', 'i2c-1').detail).toContain('dtparam=i2c_arm=on');
      expect(row(report, 'i2c', 'board-temp').detail).toBe('tmp102 at 0x48: not identified, bus i2c-1 unavailable (see above)');
      expect(row(report, 'serial', 'rs485')).toMatchObject({ status: 'fail', detail: `serial port ${join(missing, 'ttyAMA0')} does not exist` });
      expect(row(report, 'watchdog', join(missing, 'watchdog')).detail).toContain('dtparam=watchdog=on');
      expect(row(report, 'net', 'wlan0')).toMatchObject({ status: 'fail', code: 'ERR_HAL_NOT_FOUND' });
    } finally {
      await board.close();
    }
  });
});

const exec = promisify(execFile);

/** Runs the built CLI, never rejecting on a non-zero exit. */
async function cli(args: string[], asUser?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const [file, argv] = asUser
    ? ['setpriv', ['--reuid', asUser, '--regid', asUser, '--clear-groups', process.execPath, CLI, ...args]]
    : [process.execPath, [CLI, ...args]];
  try {
    const { stdout, stderr } = await exec(file, argv as string[]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('handcheck check', () => {
  it('refuses a sim entry with ERR_SELF_CHECK_SIM', async () => {
    const result = await cli(['check', '--board', 'sim-appliance']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ERR_SELF_CHECK_SIM');
  });
});

describeAsRoot('handcheck check as an unprivileged user', 'running the check as another user', ['setpriv'], () => {
  it('names the group that would grant access and the groups the user lacks', async () => {
    await chmod(temp.dir, 0o755);
    const dev = join(temp.dir, 'dev');
    await mkdir(dev, { mode: 0o755 });
    const serial = join(dev, 'ttyAMA0');
    const watchdog = join(dev, 'watchdog');
    await writeFile(serial, '');
    await writeFile(watchdog, '');
    // As udev leaves them on a Pi: the UART in group dialout, the watchdog root's alone.
    await chown(serial, 0, 20);
    await chmod(serial, 0o660);
    await chmod(watchdog, 0o600);
    const stock = selectBoard(boards, 'rpi4');
    const file = join(temp.dir, 'boards.json');
    await writeFile(
      file,
      JSON.stringify({
        boards: [
          {
            id: 'perm-test',
            name: 'permission test',
            backend: 'linux',
            // Without its gpio table the entry keeps no DE line: the port is a plain one here.
            serial: stock.serial?.map(({ rs485: _, ...p }) => ({ ...p, path: serial })),
            watchdog: { device: watchdog, timeoutS: 10 },
            components: [{ id: 'meter', kind: 'serial-peer', port: 'rs485', protocol: 'modbus-rtu' }],
            services: [{ id: 'modbus', protocol: 'modbus-tcp', listen: '127.0.0.1:0', dependsOn: ['meter'] }],
          },
        ],
      }),
    );
    await chmod(file, 0o644);
    const result = await cli(['check', '--board', 'perm-test', '--boards', file], '65534');
    expect(result.code).toBe(1);
    const lines = result.stdout.split('\n');
    expect(lines.find((l) => l.startsWith('user'))).toMatch(/^user +uid 65534 +WARN +not in group dialout/);
    expect(lines.find((l) => l.startsWith('serial'))).toMatch(
      new RegExp(`^serial +rs485 +FAIL +no read/write access to serial port ${serial} \\(group dialout\\); add the user to group dialout \\(sudo usermod -aG dialout USER, then log in again\\)$`),
    );
    expect(lines.find((l) => l.startsWith('watchdog') && l.includes(watchdog))).toContain(`FAIL    no write access to watchdog device ${watchdog} (group root)`);
  });
});
