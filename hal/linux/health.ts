/**
 * The board's own health from sysfs and procfs: no shell command (`vcgencmd`, `df`, `timedatectl`)
 * is run. Every path hangs off one root directory (default `/`), so tests lay out a fake tree.
 *
 * - power: the `rpi_volt` hwmon's `in0_lcrit_alarm` (drivers/hwmon/raspberrypi-hwmon.c, `rpi_read`:
 *   the firmware's under-voltage sticky bit 16 as last polled). That driver polls the firmware every
 *   2 s asking it to clear the sticky bits (`rpi_firmware_get_throttled`, value 0xffff), so the alarm
 *   means "under-voltage within the last poll", and the "has occurred" bits 16-19 of the firmware's
 *   get_throttled word mean "since boot" only where `rpi_volt` is not bound. The word itself is read
 *   from `get_throttled` under a platform bus's `*:firmware` device where the kernel exposes it
 *   (Raspberry Pi kernels: /sys/devices/platform/soc/soc:firmware/get_throttled, patch
 *   "firmware/raspberrypi: Add a get_throttled sysfs file").
 * - SoC temperature: /sys/class/thermal/thermal_zoneN/{type,temp,trip_point_M_temp,trip_point_M_type}
 *   (Documentation/driver-api/thermal/sysfs-api.rst), millidegrees Celsius.
 * - storage: /proc/mounts for the mount's options, statfs(2) for space, and for an eMMC
 *   /sys/block/DEV/device/{life_time,pre_eol_info} (drivers/mmc/core/mmc.c, MMC_DEV_ATTR).
 * - clock: the kernel's NTP state through adjtimex(2) with modes 0 (the native addon,
 *   native/src/timex.cc), which any time daemon leaves there (systemd-timesyncd, chrony, ntpd), and
 *   /run/systemd/timesync/synchronized, which systemd-timesyncd touches at each synchronisation
 *   (systemd-timesyncd.service(8), "Files"), for the time since. The kernel decides: a Pi has no
 *   real-time clock, so after a boot without network its clock is fake-hwclock's last saved time and
 *   the kernel still has STA_UNSYNC and maxerror at NTP_PHASE_LIMIT from ntp_init/ntp_clear. Without
 *   the addon, the marker alone.
 * - memory: /proc/pressure/memory (Documentation/accounting/psi.rst).
 */
import type { StatsFs } from 'node:fs';
import { readFile, readdir, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HalIoError, HalNotFoundError, HalUnsupportedError, errnoOf, halErrorFromErrno } from '../errors.js';
import { type ClockStatus, type HealthSource, type KernelTimex, type MemoryPressure, type PowerStatus, type StorageStatus, type ThermalStatus, type ThermalTrip, kernelClockStatus } from '../health.js';
import { ioctlAddon } from './ioctl.js';

export interface LinuxHealthOptions {
  /** Directory standing for `/`; default `/`. */
  root?: string;
  /** statfs(2) of a path under the root; default node:fs statfs. */
  statfs?: (path: string) => Promise<Pick<StatsFs, 'blocks' | 'bfree' | 'bavail'>>;
  /** Wall-clock now, for the age of the last synchronisation; default Date.now. */
  now?: () => number;
  /** adjtimex(2) read only; undefined where it cannot be read. Default: the native addon's, when built. */
  adjtimex?: () => KernelTimex | undefined;
}

function addonAdjtimex(): KernelTimex | undefined {
  return ioctlAddon()?.adjtimexRead?.();
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
    throw halErrorFromErrno(err, 'read', path);
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return [];
    throw halErrorFromErrno(err, 'list', dir);
  }
}

/** get_throttled bits (Raspberry Pi documentation, "vcgencmd get_throttled"). */
export const throttledBits = {
  underVoltage: 1 << 0,
  frequencyCapped: 1 << 1,
  throttled: 1 << 2,
  softTemperatureLimit: 1 << 3,
  underVoltageOccurred: 1 << 16,
  frequencyCappingOccurred: 1 << 17,
  throttlingOccurred: 1 << 18,
  softTemperatureLimitOccurred: 1 << 19,
} as const;

/** /proc/mounts escapes space, tab, newline and backslash as octal (fs/proc_namespace.c, `show_vfsmnt` via mangle). */
function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** JEDEC JESD84-B50 EXT_CSD[268/269] DEVICE_LIFE_TIME_EST: 0x01-0x0A in steps of 10 %, 0x0B exceeded; 0x00 not defined. */
export function lifeTimeUsedPct(estimate: number): number | undefined {
  if (estimate >= 0x01 && estimate <= 0x0a) return estimate * 10;
  if (estimate === 0x0b) return 110;
  return undefined;
}

export class LinuxHealth implements HealthSource {
  private readonly root: string;
  private readonly statfs: NonNullable<LinuxHealthOptions['statfs']>;
  private readonly now: () => number;
  private readonly adjtimex: () => KernelTimex | undefined;

  constructor(options: LinuxHealthOptions = {}) {
    this.root = options.root ?? '/';
    this.statfs = options.statfs ?? ((path) => statfs(path));
    this.now = options.now ?? Date.now;
    this.adjtimex = options.adjtimex ?? addonAdjtimex;
  }

  private path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  private async hwmonAlarm(): Promise<{ path: string; value: boolean } | undefined> {
    const dir = this.path('sys/class/hwmon');
    for (const entry of await list(dir)) {
      if ((await readText(join(dir, entry, 'name'))) !== 'rpi_volt') continue;
      const path = join(dir, entry, 'in0_lcrit_alarm');
      const text = await readText(path);
      if (text === undefined) continue;
      return { path, value: text !== '0' };
    }
    return undefined;
  }

  private async throttledWord(): Promise<{ path: string; value: number } | undefined> {
    const platform = this.path('sys/devices/platform');
    const candidates: string[] = [];
    for (const bus of await list(platform)) {
      if (bus.endsWith(':firmware')) candidates.push(join(platform, bus));
      for (const child of await list(join(platform, bus))) if (child.endsWith(':firmware')) candidates.push(join(platform, bus, child));
    }
    for (const dir of candidates) {
      const path = join(dir, 'get_throttled');
      const text = await readText(path);
      if (text === undefined) continue;
      const value = Number.parseInt(text, 16);
      if (!Number.isInteger(value)) throw new HalIoError(`${path} holds ${JSON.stringify(text)}, not a hexadecimal word`, { target: path });
      return { path, value };
    }
    return undefined;
  }

  async power(): Promise<PowerStatus> {
    const [alarm, word] = await Promise.all([this.hwmonAlarm(), this.throttledWord()]);
    if (!alarm && !word) {
      throw new HalNotFoundError(
        `no Raspberry Pi power status: no hwmon named rpi_volt under ${this.path('sys/class/hwmon')} (CONFIG_SENSORS_RASPBERRYPI_HWMON) and no get_throttled under ${this.path('sys/devices/platform')}`,
        { target: 'power' },
      );
    }
    const status: PowerStatus = {
      underVoltage: alarm ? alarm.value : Boolean(word!.value & throttledBits.underVoltage),
      source: [alarm?.path, word?.path].filter(Boolean).join(', '),
    };
    if (word) {
      status.throttledBits = word.value;
      status.throttled = Boolean(word.value & throttledBits.throttled);
      status.frequencyCapped = Boolean(word.value & throttledBits.frequencyCapped);
      status.softTemperatureLimit = Boolean(word.value & throttledBits.softTemperatureLimit);
      if (!alarm) {
        status.underVoltageOccurred = Boolean(word.value & throttledBits.underVoltageOccurred);
        status.throttlingOccurred = Boolean(word.value & throttledBits.throttlingOccurred);
      }
    }
    return status;
  }

  async thermal(zone?: string): Promise<ThermalStatus> {
    const dir = this.path('sys/class/thermal');
    const zones = (await list(dir)).filter((entry) => /^thermal_zone\d+$/.test(entry));
    for (const entry of zones) {
      const type = (await readText(join(dir, entry, 'type'))) ?? entry;
      if (zone !== undefined ? type !== zone : entry !== zones[0]) continue;
      const text = await readText(join(dir, entry, 'temp'));
      const milli = Number(text);
      if (text === undefined || !Number.isFinite(milli)) {
        throw new HalIoError(`${join(dir, entry, 'temp')} holds ${JSON.stringify(text)}, not millidegrees`, { target: `thermal:${type}` });
      }
      const trips: ThermalTrip[] = [];
      for (const name of await list(join(dir, entry))) {
        const match = /^trip_point_(\d+)_temp$/.exec(name);
        if (!match) continue;
        const tripType = await readText(join(dir, entry, `trip_point_${match[1]}_type`));
        const tripMilli = Number(await readText(join(dir, entry, name)));
        if (tripType !== undefined && Number.isFinite(tripMilli)) trips.push({ type: tripType, temperatureC: tripMilli / 1000 });
      }
      return { zone: type, temperatureC: milli / 1000, trips };
    }
    throw new HalNotFoundError(
      zone === undefined ? `no thermal zone under ${dir}` : `no thermal zone of type ${JSON.stringify(zone)} under ${dir}`,
      { target: `thermal:${zone ?? 'thermal_zone0'}` },
    );
  }

  async storage(mountPoint: string, device?: string): Promise<StorageStatus> {
    const mountsPath = this.path('proc/mounts');
    const mounts = await readText(mountsPath);
    if (mounts === undefined) throw new HalUnsupportedError(`${mountsPath} does not exist (procfs not mounted)`, { target: mountsPath });
    // A later mount on the same point hides the earlier ones; the last line is the one in force.
    const options = mounts
      .split('\n')
      .map((line) => line.split(' '))
      .filter((fields) => fields.length >= 4 && unescapeMount(fields[1]!) === mountPoint)
      .at(-1)?.[3];
    if (options === undefined) throw new HalNotFoundError(`nothing is mounted at ${mountPoint} (${mountsPath})`, { target: `mount:${mountPoint}` });
    let space: Pick<StatsFs, 'blocks' | 'bfree' | 'bavail'>;
    try {
      space = await this.statfs(this.path(mountPoint));
    } catch (err) {
      throw halErrorFromErrno(err, 'statfs', mountPoint);
    }
    const used = space.blocks - space.bfree;
    const status: StorageStatus = {
      mountPoint,
      readOnly: options.split(',').includes('ro'),
      usedPct: used + space.bavail > 0 ? Math.round((used / (used + space.bavail)) * 10000) / 100 : 0,
    };
    if (device !== undefined) {
      const dir = this.path('sys/block', device, 'device');
      const lifeTime = await readText(join(dir, 'life_time'));
      const estimates = (lifeTime ?? '').split(/\s+/).map((field) => lifeTimeUsedPct(Number.parseInt(field, 16))).filter((pct) => pct !== undefined);
      if (estimates.length > 0) status.lifeTimeUsedPct = Math.max(...estimates);
      const preEol = Number.parseInt((await readText(join(dir, 'pre_eol_info'))) ?? '', 16);
      if (preEol >= 1 && preEol <= 3) status.preEol = preEol;
    }
    return status;
  }

  async clock(): Promise<ClockStatus> {
    const marker = await this.timesyncMarker();
    let tx: KernelTimex | undefined;
    try {
      tx = this.adjtimex();
    } catch (err) {
      throw halErrorFromErrno(err, 'adjtimex', 'clock');
    }
    if (tx) {
      return {
        ...kernelClockStatus(tx),
        ...(marker.mtimeMs !== undefined ? { sinceSyncS: Math.max(0, (this.now() - marker.mtimeMs) / 1000) } : {}),
        source: marker.mtimeMs !== undefined ? `adjtimex, ${marker.path}` : 'adjtimex',
      };
    }
    if (marker.mtimeMs !== undefined) return { synchronized: true, sinceSyncS: Math.max(0, (this.now() - marker.mtimeMs) / 1000), source: marker.path };
    if (!marker.timesyncd) {
      throw new HalUnsupportedError(`${dirname(marker.path)} does not exist: systemd-timesyncd is not running, and the kernel's adjtimex status is not readable without the native addon`, {
        target: 'clock',
      });
    }
    return { synchronized: false, source: marker.path, why: 'systemd-timesyncd has not synchronised since boot' };
  }

  /** systemd-timesyncd's marker: its mtime when present, and whether timesyncd runs at all (its directory). */
  private async timesyncMarker(): Promise<{ path: string; mtimeMs?: number; timesyncd: boolean }> {
    const dir = this.path('run/systemd/timesync');
    const path = join(dir, 'synchronized');
    try {
      return { path, mtimeMs: (await stat(path)).mtimeMs, timesyncd: true };
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw halErrorFromErrno(err, 'stat', path);
    }
    try {
      await stat(dir);
      return { path, timesyncd: true };
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return { path, timesyncd: false };
      throw halErrorFromErrno(err, 'stat', dir);
    }
  }

  async memory(): Promise<MemoryPressure> {
    const path = this.path('proc/pressure/memory');
    const text = await readText(path);
    if (text === undefined) {
      throw new HalUnsupportedError(`${path} does not exist: the kernel has no pressure stall information (CONFIG_PSI, or psi=0 on its command line)`, { target: path });
    }
    const averages = (kind: 'some' | 'full'): { avg10: number; avg60: number } => {
      const line = text.split('\n').find((candidate) => candidate.startsWith(`${kind} `));
      const avg10 = Number(/\bavg10=([\d.]+)/.exec(line ?? '')?.[1]);
      const avg60 = Number(/\bavg60=([\d.]+)/.exec(line ?? '')?.[1]);
      if (!line || !Number.isFinite(avg10) || !Number.isFinite(avg60)) throw new HalIoError(`${path} has no "${kind} avg10=... avg60=..." line`, { target: path });
      return { avg10, avg60 };
    };
    const some = averages('some');
    const full = averages('full');
    return { someAvg10: some.avg10, someAvg60: some.avg60, fullAvg10: full.avg10, fullAvg60: full.avg60 };
  }
}
