/**
 * The start-up self-check of a real board: before the firmware runs, everything the board entry
 * assumes about the machine is checked once and reported as rows, so a wrong board entry or a missing
 * group shows up as one line at start instead of as a component failing at every connection.
 *
 * It never changes the hardware's state: GPIO lines are resolved from sysfs but not exported, the
 * watchdog's sysfs attributes are read but /dev/watchdog is not opened (opening it arms it), serial
 * ports are checked for access, not opened. I2C chips are identified with their driver's `identify()`,
 * which only reads identity registers. Readings are not judged here: `handcheck diag` runs the
 * firmware's own checks with the entry's thresholds, so there is one verdict per part, not two.
 */
import { constants } from 'node:fs';
import { access, readFile, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { BoardConfig, SerialPortConfig, WatchdogConfig } from '../config/board-config.js';
import { i2cAddresses, i2cBusOf } from '../config/component-kinds.js';
import { componentDriver } from '../firmware/component-kinds.js';
import type { BoardHal } from '../hal/board.js';
import type { I2cBus } from '../hal/i2c.js';
import { type GpioChipInfo, defaultGpioRoot, listGpioChips, raspberryPiGpioChips, resolveGpioLine } from '../hal/linux/gpio-chips.js';
import { defaultWatchdogSysfsRoot, watchdogSysfsName } from '../hal/linux/watchdog.js';

export type SelfCheckStatus = 'ok' | 'warn' | 'fail';

export interface SelfCheckRow {
  area: 'user' | 'gpio' | 'i2c' | 'serial' | 'watchdog' | 'net';
  /** What was checked: a line name, a bus, a component id, a device path. */
  item: string;
  status: SelfCheckStatus;
  detail: string;
  /** The HalError code behind a failure, when there is one. */
  code?: string;
}

export interface SelfCheckReport {
  board: string;
  rows: SelfCheckRow[];
  failed: number;
  warnings: number;
}

export interface SelfCheckOptions {
  /** Opens the I2C buses and network interfaces of the entry: a LinuxBoard on it. */
  board: BoardHal;
  /** Default /sys/class/gpio. */
  gpioRoot?: string;
  /** Default /sys/class/watchdog. */
  watchdogSysfsRoot?: string;
  /** Where to look for another process holding the watchdog. Default /proc. */
  procRoot?: string;
  /** systemd's configuration, for RuntimeWatchdogSec. Default /etc/systemd. */
  systemdConfDir?: string;
  /** Default /etc/group. */
  groupFile?: string;
  /** Per identify() transfer; default the bus's own timeout. */
  timeoutMs?: number;
}

/** The board entry written for each Raspberry Pi pin controller, to name the right one when the label is wrong. */
const boardForChip: Record<string, string> = {
  'pinctrl-bcm2835': 'rpi-zero-2w',
  'pinctrl-bcm2711': 'rpi4',
  'pinctrl-rp1': 'rpi5',
};

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function failure(area: SelfCheckRow['area'], item: string, err: unknown): SelfCheckRow {
  const code = errnoOf(err);
  return { area, item, status: 'fail', detail: messageOf(err), ...(code?.startsWith('ERR_') ? { code } : {}) };
}

async function groupNames(groupFile: string): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  const text = await readFile(groupFile, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid !== undefined && gid !== '') names.set(Number(gid), name);
  }
  return names;
}

class AccessChecker {
  private constructor(private readonly groups: Map<number, string>) {}

  static async create(groupFile: string): Promise<AccessChecker> {
    return new AccessChecker(await groupNames(groupFile));
  }

  groupName(gid: number): string {
    return this.groups.get(gid) ?? String(gid);
  }

  /** The process's groups by name. */
  memberOf(): string[] {
    return (process.getgroups?.() ?? []).map((gid) => this.groupName(gid));
  }

  /**
   * Undefined when `path` allows `mode`; otherwise why not, naming the group that owns it so the
   * remedy (`usermod -aG GROUP`) is in the message.
   */
  async why(path: string, mode: number, what: string): Promise<{ errno: string; detail: string } | undefined> {
    try {
      await access(path, mode);
      return undefined;
    } catch (err) {
      const errno = errnoOf(err) ?? 'EIO';
      if (errno === 'EACCES' || errno === 'EPERM') {
        const owner = await stat(path).then(
          (s) => this.groupName(s.gid),
          () => undefined,
        );
        const remedy = owner && owner !== 'root' ? `; add the user to group ${owner} (sudo usermod -aG ${owner} USER, then log in again)` : '';
        const kind = mode & constants.R_OK && mode & constants.W_OK ? 'read/write' : mode & constants.W_OK ? 'write' : 'read';
        return { errno, detail: `no ${kind} access to ${what} ${path}${owner ? ` (group ${owner})` : ''}${remedy}` };
      }
      if (errno === 'ENOENT') return { errno, detail: `${what} ${path} does not exist` };
      return { errno, detail: `${what} ${path}: ${messageOf(err)}` };
    }
  }
}

function userRow(config: Readonly<BoardConfig>, checker: AccessChecker): SelfCheckRow {
  const uid = process.getuid?.() ?? -1;
  const groups = checker.memberOf();
  if (uid === 0) return { area: 'user', item: 'root', status: 'ok', detail: 'running as root: device access needs no group membership' };
  const needed = [
    ...(config.gpio && Object.keys(config.gpio).length > 0 ? ['gpio'] : []),
    ...(config.i2c && config.i2c.length > 0 ? ['i2c'] : []),
    ...(config.serial && config.serial.length > 0 ? ['dialout'] : []),
  ];
  const missing = needed.filter((g) => !groups.includes(g));
  const item = `uid ${uid}`;
  if (missing.length === 0) return { area: 'user', item, status: 'ok', detail: `groups ${groups.join(',') || 'none'}` };
  return {
    area: 'user',
    item,
    status: 'warn',
    detail: `not in group${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (member of ${groups.join(',') || 'none'}); the device rows below say what that costs`,
  };
}

function describeLine(chip: GpioChipInfo, line: string | number, offset: number, number: number): string {
  return `${chip.label} ${typeof line === 'number' ? `offset ${line}` : `${line} (offset ${offset})`} on ${chip.name}, base ${chip.base}, ngpio ${chip.ngpio} -> gpio${number}`;
}

async function gpioRows(config: Readonly<BoardConfig>, root: string, checker: AccessChecker): Promise<SelfCheckRow[]> {
  const lines = Object.entries(config.gpio ?? {});
  if (lines.length === 0) return [];
  let chips: GpioChipInfo[];
  try {
    chips = await listGpioChips(root);
  } catch (err) {
    return [failure('gpio', root, err)];
  }
  const rows: SelfCheckRow[] = [];
  const exportDenied = await checker.why(join(root, 'export'), constants.W_OK, 'GPIO export file');
  rows.push(
    exportDenied
      ? { area: 'gpio', item: 'export', status: 'fail', detail: exportDenied.detail, code: exportDenied.errno === 'ENOENT' ? 'ERR_HAL_UNSUPPORTED' : 'ERR_HAL_PERMISSION' }
      : { area: 'gpio', item: 'export', status: 'ok', detail: `${chips.length} chips: ${chips.map((c) => `${c.label}@${c.base}`).join(', ') || 'none'}` },
  );
  const labels = new Set(chips.map((c) => c.label));
  for (const [name, spec] of lines) {
    try {
      const resolved = await resolveGpioLine(spec, root);
      const detail = describeLine(resolved.chip, spec.line, resolved.offset, resolved.number);
      const exported = await stat(join(root, `gpio${resolved.number}`)).then(
        () => true,
        () => false,
      );
      rows.push(
        exported
          ? { area: 'gpio', item: name, status: 'warn', detail: `${detail}; already exported by another process or a firmware that did not unexport it` }
          : { area: 'gpio', item: name, status: 'ok', detail },
      );
    } catch (err) {
      const row = failure('gpio', name, err);
      if (!labels.has(spec.chip)) {
        const other = raspberryPiGpioChips.find((label) => labels.has(label));
        const entry = other && boardForChip[other];
        if (entry) row.detail += `; this machine has ${other}: is the board entry ${entry} meant?`;
      }
      rows.push(row);
    }
  }
  return rows;
}

/** The failed row for a device file the process cannot use; `missingHint` says how to enable an absent one. */
function deniedRow(area: SelfCheckRow['area'], item: string, denied: { errno: string; detail: string }, missingHint = ''): SelfCheckRow {
  const missing = denied.errno === 'ENOENT';
  return { area, item, status: 'fail', detail: denied.detail + (missing ? missingHint : ''), code: missing ? 'ERR_HAL_NOT_FOUND' : 'ERR_HAL_PERMISSION' };
}

async function i2cRows(board: BoardHal, checker: AccessChecker, timeoutMs: number | undefined): Promise<SelfCheckRow[]> {
  const rows: SelfCheckRow[] = [];
  const config = board.config;
  for (const busConfig of config.i2c ?? []) {
    const denied = await checker.why(busConfig.device, constants.R_OK | constants.W_OK, 'I2C adapter');
    if (denied) rows.push(deniedRow('i2c', busConfig.id, denied, '; enable it (dtparam=i2c_arm=on in config.txt, or raspi-config) and load i2c-dev'));
    let bus: I2cBus | undefined;
    if (!denied) {
      try {
        bus = await board.i2c(busConfig.id);
        rows.push({ area: 'i2c', item: busConfig.id, status: 'ok', detail: `${busConfig.device} open` });
      } catch (err) {
        rows.push(failure('i2c', busConfig.id, err));
      }
    }
    for (const component of config.components) {
      const chip = componentDriver(component).chip;
      if (!chip || i2cBusOf(component) !== busConfig.id) continue;
      const address = i2cAddresses(component)[0]?.address ?? 0;
      const where = `${component.kind} at 0x${address.toString(16).padStart(2, '0')}`;
      if (!bus) {
        rows.push({ area: 'i2c', item: component.id, status: 'fail', detail: `${where}: not identified, bus ${busConfig.id} unavailable (see above)` });
        continue;
      }
      const driver = chip(component, bus, board);
      try {
        const identity = await driver.identify(timeoutMs === undefined ? {} : { timeoutMs });
        rows.push({ area: 'i2c', item: component.id, status: 'ok', detail: `${where}: ${identity.part}` });
      } catch (err) {
        const code = errnoOf(err);
        const row = failure('i2c', component.id, err);
        if (code === 'ERR_HAL_NACK') row.detail = `${where}: absent, nothing acknowledges the address (${messageOf(err)})`;
        else if (code === 'ERR_HAL_IDENTITY') row.detail = `${where}: wrong identity: ${messageOf(err)}`;
        else row.detail = `${where}: ${messageOf(err)}`;
        rows.push(row);
      }
    }
  }
  return rows;
}

/**
 * Who else talks on a UART: the kernel's console (registered ones in /proc/consoles, and console= on
 * /proc/cmdline, where a Pi's firmware has already turned serial0 into the UART's name) and a getty
 * (agetty, getty, as serial-getty@.service runs it) whose command line names the tty. Either writes
 * its own bytes into the Modbus line and reads the meter's answers.
 */
async function serialSharers(tty: string, procRoot: string): Promise<string[]> {
  const found: string[] = [];
  const consoles = await readFile(join(procRoot, 'consoles'), 'utf8').catch(() => '');
  const cmdline = await readFile(join(procRoot, 'cmdline'), 'utf8').catch(() => '');
  const onCmdline = cmdline.split(/\s+/).some((arg) => arg.startsWith('console=') && arg.slice('console='.length).split(',')[0] === tty);
  if (consoles.split('\n').some((line) => line.split(/\s+/)[0] === tty) || onCmdline) {
    found.push(`${tty} is the kernel's console: remove console=${tty} (console=serial0 on a Pi) from the kernel command line (cmdline.txt) and reboot`);
  }
  const pids = await readdir(procRoot).catch(() => []);
  for (const pid of pids.filter((p) => /^\d+$/.test(p))) {
    const argv = (await readFile(join(procRoot, pid, 'cmdline'), 'utf8').catch(() => '')).split('\0').filter(Boolean);
    if (!/getty$/.test(argv[0]?.split('/').pop() ?? '')) continue;
    if (argv.slice(1).some((arg) => arg === tty || arg === `/dev/${tty}`)) {
      found.push(`${argv[0]} (pid ${pid}) runs a login on ${tty}: systemctl disable --now serial-getty@${tty}.service (raspi-config: serial login shell off)`);
    }
  }
  return found;
}

/**
 * The header pins of a Raspberry Pi UART's modem lines, for the UARTs that sit on GPIO14/15: UART0
 * (the PL011, ttyAMA0: RTS is GPIO17 in ALT3, CTS GPIO16) and the mini UART (ttyS0: the same pins in
 * ALT5). Undefined for any other port or a board that is not a Pi.
 */
function piUartModemPins(tty: string, config: Readonly<BoardConfig>): { chip: string; rts: number; cts: number } | undefined {
  if (tty !== 'ttyAMA0' && tty !== 'ttyS0') return undefined;
  const chip = Object.values(config.gpio ?? {}).find((line) => raspberryPiGpioChips.includes(line.chip))?.chip;
  return chip === undefined ? undefined : { chip, rts: 17, cts: 16 };
}

/** The gpio entries of the board on `chip` pin `pin` (by BCM name or offset). */
function entriesOnPin(config: Readonly<BoardConfig>, chip: string, pin: number): string[] {
  return Object.entries(config.gpio ?? {})
    .filter(([, line]) => line.chip === chip && (line.line === pin || line.line === `GPIO${pin}`))
    .map(([name]) => name);
}

/**
 * What a port's RS-485 and flow-control settings ask of the UART's modem lines: hardware flow control
 * and RS-485 on one port conflict (RTS is the transceiver's DE, and nothing drives CTS: amba-pl011.c
 * pl011_set_termios drops CRTSCTS in RS-485 mode, serial_core.c uart_handle_cts_change stops the
 * transmitter while CTS is inactive), and on a Pi the UART's RTS (kernel RS-485, rtscts) and CTS
 * (rtscts) pins cannot also be lines the entry uses.
 */
function modemLineRows(port: Readonly<SerialPortConfig>, tty: string, config: Readonly<BoardConfig>): SelfCheckRow[] {
  const rows: SelfCheckRow[] = [];
  if (port.rtscts && port.rs485) {
    rows.push({
      area: 'serial',
      item: `${port.id} rtscts`,
      status: 'fail',
      detail: `hardware flow control (rtscts) and RS-485 (rs485.direction ${port.rs485.direction}) on one port conflict: RTS is the transceiver's driver enable, not a flow-control output, and nothing on an RS-485 transceiver drives CTS, so the transmitter would wait for it (the PL011 drops CRTSCTS in RS-485 mode instead); remove rtscts from serial port ${port.id}`,
      code: 'ERR_HAL_RS485_CONFLICT',
    });
  }
  const pins = piUartModemPins(tty, config);
  if (!pins) return rows;
  const wanted: Array<{ pin: number; role: string }> = [];
  if (port.rs485?.direction === 'kernel' || port.rtscts) wanted.push({ pin: pins.rts, role: port.rs485?.direction === 'kernel' ? "RTS, the transceiver's DE in the kernel's RS-485 mode" : 'RTS for hardware flow control' });
  if (port.rtscts) wanted.push({ pin: pins.cts, role: 'CTS for hardware flow control' });
  for (const { pin, role } of wanted) {
    const users = entriesOnPin(config, pins.chip, pin).filter((name) => name !== port.rs485?.deLine);
    if (users.length === 0) continue;
    rows.push({
      area: 'serial',
      item: `${port.id} GPIO${pin}`,
      status: 'fail',
      detail: `${tty}'s ${role} is GPIO${pin} (header pin ${pin === 17 ? 11 : 36}), which the board entry also uses as ${users.join(', ')}: move ${users.join(', ')} to a free line, or ${port.rs485?.direction === 'kernel' ? 'switch DE to rs485.direction "gpio" on a free line' : 'remove rtscts'}`,
    });
  }
  return rows;
}

async function serialRows(config: Readonly<BoardConfig>, checker: AccessChecker, procRoot: string): Promise<SelfCheckRow[]> {
  const rows: SelfCheckRow[] = [];
  for (const port of config.serial ?? []) {
    const denied = await checker.why(port.path, constants.R_OK | constants.W_OK, 'serial port');
    const tty = basename(await realpath(port.path).catch(() => port.path));
    const sharers = denied ? [] : await serialSharers(tty, procRoot);
    const direction = port.rs485 ? `, RS-485 with DE switched by ${port.rs485.direction === 'kernel' ? "the kernel's RS-485 mode (RTS)" : `GPIO line ${port.rs485.deLine ?? '?'}`}` : '';
    rows.push(
      denied
        ? deniedRow('serial', port.id, denied)
        : sharers.length > 0
          ? { area: 'serial', item: port.id, status: 'fail', detail: sharers.join('; ') }
          : { area: 'serial', item: port.id, status: 'ok', detail: `${port.path} readable and writable, ${port.baudRate} baud${direction}` },
    );
    rows.push(...modemLineRows(port, tty, config));
  }
  return rows;
}

async function readAttribute(dir: string, name: string): Promise<string> {
  return (await readFile(join(dir, name), 'utf8')).trim();
}

/** bcm2835_wdt's max_timeout: WDOG_TICKS_TO_SECS(PM_WDOG_TIME_SET) = 0xfffff >> 16 (drivers/watchdog/bcm2835_wdt.c). */
const bcm2835MaxTimeoutS = 15;

/** systemd's RuntimeWatchdogSec as its config files set it (the last assignment wins), or undefined when unset or off. */
async function runtimeWatchdogSec(confDir: string): Promise<{ value: string; file: string } | undefined> {
  const dropIns = await readdir(join(confDir, 'system.conf.d')).then(
    (names) => names.filter((n) => n.endsWith('.conf')).sort().map((n) => join(confDir, 'system.conf.d', n)),
    () => [],
  );
  let found: { value: string; file: string } | undefined;
  for (const file of [join(confDir, 'system.conf'), ...dropIns]) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const match = /^\s*RuntimeWatchdogSec\s*=\s*(\S*)\s*$/.exec(line);
      if (match) found = { value: match[1] ?? '', file };
    }
  }
  return found && !['', '0', 'off'].includes(found.value.toLowerCase()) ? found : undefined;
}

/**
 * Processes with the watchdog open, from their /proc/PID/fd links; another user's are visible only
 * to root. The core lets one opener at a time (watchdog_dev.c watchdog_open: EBUSY), and
 * /dev/watchdog and /dev/watchdogN are the same device.
 */
async function watchdogHolders(procRoot: string, paths: string[]): Promise<Array<{ pid: number; comm: string }>> {
  const holders: Array<{ pid: number; comm: string }> = [];
  const pids = await readdir(procRoot).catch(() => []);
  for (const pid of pids.filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    const fds = await readdir(join(procRoot, pid, 'fd')).catch(() => []);
    for (const fd of fds) {
      const target = await readlink(join(procRoot, pid, 'fd', fd)).catch(() => '');
      if (paths.includes(target)) {
        const comm = (await readFile(join(procRoot, pid, 'comm'), 'utf8').catch(() => '?')).trim();
        holders.push({ pid: Number(pid), comm });
        break;
      }
    }
  }
  return holders;
}

async function watchdogHolderRow(wd: WatchdogConfig, dir: string, procRoot: string, systemdConfDir: string): Promise<SelfCheckRow | undefined> {
  const name = watchdogSysfsName(wd.device);
  const holders = await watchdogHolders(procRoot, [wd.device, `/dev/${name}`, ...(name === 'watchdog0' ? ['/dev/watchdog'] : [])]);
  const systemd = await runtimeWatchdogSec(systemdConfDir);
  const state = await readAttribute(dir, 'state').catch(() => undefined);
  const systemdFix = 'set RuntimeWatchdogSec=off in /etc/systemd/system.conf (or a drop-in in /etc/systemd/system.conf.d/) and reboot, or remove the board entry\'s watchdog and leave the Pi to systemd\'s';
  const byName = holders.map((h) => `pid ${h.pid} (${h.comm})`).join(', ');
  if (holders.some((h) => h.pid === 1) || (systemd && (holders.length > 0 || state === 'active'))) {
    const setting = systemd ? `RuntimeWatchdogSec=${systemd.value} in ${systemd.file}` : 'its RuntimeWatchdogSec';
    return {
      area: 'watchdog',
      item: 'holder',
      status: 'fail',
      detail: `systemd holds ${wd.device} (${setting}${byName ? `; ${byName}` : ''}): the firmware's open fails with EBUSY and it cannot kick; ${systemdFix}`,
      code: 'ERR_HAL_BUS_BUSY',
    };
  }
  if (holders.length > 0) {
    return {
      area: 'watchdog',
      item: 'holder',
      status: 'fail',
      detail: `held by ${byName}: the device allows one opener, so the firmware's open fails with EBUSY; stop that process or remove the board entry's watchdog`,
      code: 'ERR_HAL_BUS_BUSY',
    };
  }
  if (systemd) {
    return {
      area: 'watchdog',
      item: 'holder',
      status: 'warn',
      detail: `RuntimeWatchdogSec=${systemd.value} in ${systemd.file}: systemd opens the watchdog at boot, and then the firmware's open fails with EBUSY; ${systemdFix}`,
    };
  }
  if (state === 'active') {
    return {
      area: 'watchdog',
      item: 'holder',
      status: 'warn',
      detail: `already running (sysfs state active) and no process found holding it${process.getuid?.() === 0 ? '' : ' (only root sees other users\' open files)'}: another program may hold it, or the last one closed it without the magic close`,
    };
  }
  return undefined;
}

async function watchdogRows(config: Readonly<BoardConfig>, sysfsRoot: string, checker: AccessChecker, procRoot: string, systemdConfDir: string): Promise<SelfCheckRow[]> {
  const wd = config.watchdog;
  if (!wd) return [];
  const rows: SelfCheckRow[] = [];
  const denied = await checker.why(wd.device, constants.W_OK, 'watchdog device');
  if (denied) rows.push(deniedRow('watchdog', wd.device, denied, '; enable it with dtparam=watchdog=on in config.txt'));
  const dir = join(sysfsRoot, watchdogSysfsName(wd.device));
  let identity: string;
  let timeoutS: number;
  try {
    identity = await readAttribute(dir, 'identity');
    const text = await readAttribute(dir, 'timeout');
    timeoutS = Number(text);
    if (!Number.isInteger(timeoutS) || timeoutS <= 0) throw new Error(`${join(dir, 'timeout')} holds ${JSON.stringify(text)}, not seconds`);
  } catch (err) {
    const why = errnoOf(err) === 'ENOENT' ? `${messageOf(err)}: the kernel exposes no watchdog sysfs attributes (CONFIG_WATCHDOG_SYSFS), so the timeout in force cannot be read` : messageOf(err);
    rows.push({ area: 'watchdog', item: 'timeout', status: 'fail', detail: `unreadable: ${why}`, code: 'ERR_HAL_UNSUPPORTED' });
    return rows;
  }
  if (!denied) rows.push({ area: 'watchdog', item: wd.device, status: 'ok', detail: `${identity}, writable` });
  const holder = await watchdogHolderRow(wd, dir, procRoot, systemdConfDir);
  if (holder) rows.push(holder);
  // max_timeout reads 0 where the driver sets max_hw_heartbeat_ms instead and the core emulates longer timeouts.
  const maxText = await readAttribute(dir, 'max_timeout').catch(() => undefined);
  const sysfsMax = maxText === undefined ? undefined : Number(maxText);
  const maxS = sysfsMax !== undefined && Number.isInteger(sysfsMax) && sysfsMax > 0 ? sysfsMax : wd.driver === 'bcm2835' ? bcm2835MaxTimeoutS : undefined;
  const requested = wd.timeoutS;
  if (timeoutS === requested) {
    rows.push({ area: 'watchdog', item: 'timeout', status: 'ok', detail: `${timeoutS} s in force, as requested` });
  } else if (maxS !== undefined && requested > maxS) {
    rows.push({
      area: 'watchdog',
      item: 'timeout',
      status: 'warn',
      detail: `refused: requested ${requested} s, the driver counts at most ${maxS} s and refuses more with EINVAL (it does not clamp); ${timeoutS} s stays in force; set timeoutS to ${maxS} or less`,
    });
  } else {
    // Node cannot issue WDIOC_SETTIMEOUT, so the keeper runs with the timeout already in force, and
    // kicks as firmware/watchdog-keeper.ts schedules it for that timeout.
    const kickS = Math.min(wd.kickIntervalMs ?? (timeoutS * 1000) / 3, (timeoutS * 1000) / 2) / 1000;
    rows.push({
      area: 'watchdog',
      item: 'timeout',
      status: 'warn',
      detail: `requested ${requested} s, ${timeoutS} s in force and cannot be changed without the WDIOC_SETTIMEOUT ioctl; the firmware kicks every ${kickS} s`,
    });
  }
  return rows;
}

async function netRows(board: BoardHal): Promise<SelfCheckRow[]> {
  const rows: SelfCheckRow[] = [];
  for (const net of board.config.net ?? []) {
    try {
      const status = await (await board.net.open(net.name)).status();
      const detail = `carrier ${status.carrier ? 'up' : 'down'}, operstate ${status.operstate}${status.speedMbps === null ? '' : `, ${status.speedMbps} Mb/s`}`;
      rows.push({ area: 'net', item: net.name, status: status.carrier ? 'ok' : 'warn', detail });
    } catch (err) {
      rows.push(failure('net', net.name, err));
    }
  }
  return rows;
}

export async function selfCheck(options: SelfCheckOptions): Promise<SelfCheckReport> {
  const { board } = options;
  const config = board.config;
  const checker = await AccessChecker.create(options.groupFile ?? '/etc/group');
  const rows = [
    userRow(config, checker),
    ...(await gpioRows(config, options.gpioRoot ?? defaultGpioRoot, checker)),
    ...(await i2cRows(board, checker, options.timeoutMs)),
    ...(await serialRows(config, checker, options.procRoot ?? '/proc')),
    ...(await watchdogRows(config, options.watchdogSysfsRoot ?? defaultWatchdogSysfsRoot, checker, options.procRoot ?? '/proc', options.systemdConfDir ?? '/etc/systemd')),
    ...(await netRows(board)),
  ];
  return {
    board: config.id,
    rows,
    failed: rows.filter((r) => r.status === 'fail').length,
    warnings: rows.filter((r) => r.status === 'warn').length,
  };
}

/** The report as a table, one row per check, and a closing count. */
export function formatSelfCheck(report: SelfCheckReport): string {
  const rows = [['AREA', 'ITEM', 'STATUS', 'DETAIL'], ...report.rows.map((r) => [r.area, r.item, r.status.toUpperCase(), r.detail])];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const lines = rows.map((r) => r.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  ').trimEnd());
  const summary =
    report.failed === 0 && report.warnings === 0
      ? `self-check of ${report.board}: all ${report.rows.length} checks passed`
      : `self-check of ${report.board}: ${report.failed} failed, ${report.warnings} warning${report.warnings === 1 ? '' : 's'}, ${report.rows.length} checks`;
  return `${lines.join('\n')}\n${summary}\n`;
}
