/**
 * The board's own health as the kernel reports it: supply voltage and throttling, SoC temperature,
 * the root file system and its flash, clock synchronisation, memory pressure. The Linux backend
 * (hal/linux/health.ts) reads sysfs and procfs, never a shell command; the sim board answers from its
 * models.
 *
 * Rules:
 * - Each method reads the state now; nothing is cached between calls.
 * - A source the machine does not have (no `rpi_volt` hwmon, PSI off, no eMMC) rejects with
 *   ERR_HAL_NOT_FOUND or ERR_HAL_UNSUPPORTED naming the file; a field only some machines have is
 *   absent (`undefined`), never guessed.
 */

export interface PowerStatus {
  /** Under-voltage now (the firmware's under-voltage bit seen within the last poll, about 2 s). */
  underVoltage: boolean;
  /** The ARM clock is throttled now (get_throttled bit 2); absent when get_throttled is not exposed. */
  throttled?: boolean;
  /** The ARM frequency is capped now (bit 1). */
  frequencyCapped?: boolean;
  /** The soft temperature limit is active now (bit 3). */
  softTemperatureLimit?: boolean;
  /**
   * Under-voltage / throttling has occurred since boot (bits 16 / 18). Absent where the `rpi_volt`
   * hwmon is bound, because it clears those bits every 2 s; the driver then remembers what it saw.
   */
  underVoltageOccurred?: boolean;
  throttlingOccurred?: boolean;
  /** The raw get_throttled word, when read. */
  throttledBits?: number;
  /** Files read, for messages. */
  source: string;
}

export interface ThermalTrip {
  /** `critical`, `hot`, `passive` or `active` (the kernel's trip_point_N_type). */
  type: string;
  temperatureC: number;
}

export interface ThermalStatus {
  /** The zone's type (`cpu-thermal`). */
  zone: string;
  temperatureC: number;
  trips: ThermalTrip[];
}

export interface StorageStatus {
  mountPoint: string;
  /** Mounted read-only now (`ro` among the options in /proc/mounts). */
  readOnly: boolean;
  /** Space used, as `df` counts it: used / (used + available to unprivileged users), in percent. */
  usedPct: number;
  /**
   * eMMC wear, JEDEC EXT_CSD DEVICE_LIFE_TIME_EST_TYP_A/B (bytes 268/269): the upper bound of the
   * estimated lifetime used, in percent (0x01 is 0-10 %, ... 0x0A is 90-100 %, 0x0B is past it, 110).
   * The worse of the two types. Absent without an eMMC exposing `life_time`.
   */
  lifeTimeUsedPct?: number;
  /** JEDEC EXT_CSD PRE_EOL_INFO (byte 267): 1 normal, 2 warning (80 % of reserved blocks used), 3 urgent. */
  preEol?: number;
}

/** adjtimex(2) with modes 0, read only (native/src/timex.cc): the fields of struct timex the clock reading needs. */
export interface KernelTimex {
  /** The call's return value, the clock state: TIME_OK 0 ... TIME_ERROR 5. */
  state: number;
  /** STA_* bits. */
  status: number;
  maxErrorUs: number;
  estErrorUs: number;
}

/** include/uapi/linux/timex.h */
export const STA_PLL = 0x0001;
export const STA_UNSYNC = 0x0040;
export const STA_CLOCKERR = 0x1000;
export const TIME_OK = 0;
export const TIME_ERROR = 5;
/**
 * include/linux/timex.h: NTP_PHASE_LIMIT = (MAXPHASE / NSEC_PER_USEC) << 5, 16 s in microseconds.
 * second_overflow() (kernel/time/ntp.c) adds MAXFREQ / NSEC_PER_USEC (500 us) to maxerror every second
 * no daemon resets it, and at this limit sets STA_UNSYNC: about 9 h after the last synchronisation.
 */
export const NTP_PHASE_LIMIT_US = (500_000_000 / 1000) * 32;

/** The kernel's NTP state, as adjtimex(2) reports it (kernel/time/ntp.c, __do_adjtimex). */
export interface KernelClockState {
  /** STA_UNSYNC: no time daemon has disciplined the clock since boot or the last step, or second_overflow() gave up on it. */
  unsync: boolean;
  /** adjtimex returned TIME_ERROR (is_error_status: STA_UNSYNC, STA_CLOCKERR, or a PPS discipline without its signal). */
  timeError: boolean;
  /** maxerror in seconds: the kernel's bound on the clock's error, 16 (NTP_PHASE_LIMIT) once it gave up. */
  maxErrorS: number;
  /** esterror in seconds, as the time daemon last set it. */
  estErrorS: number;
}

export interface ClockStatus {
  synchronized: boolean;
  /** Seconds since the last synchronisation, when the source tells it. */
  sinceSyncS?: number;
  source: string;
  /** The kernel's own view, where it was read; when present it decides `synchronized`. */
  kernel?: KernelClockState;
  /** Why the clock is not synchronised, in words, when the source can say. */
  why?: string;
}

/**
 * What adjtimex's answer says of the clock: synchronised unless STA_UNSYNC or STA_CLOCKERR is set,
 * the call returned TIME_ERROR, or maxerror reached NTP_PHASE_LIMIT (the kernel's own bound for
 * giving up, second_overflow() in kernel/time/ntp.c).
 */
export function kernelClockStatus(tx: KernelTimex): Pick<ClockStatus, 'synchronized' | 'kernel' | 'why'> {
  const kernel: KernelClockState = {
    unsync: (tx.status & STA_UNSYNC) !== 0,
    timeError: tx.state === TIME_ERROR,
    maxErrorS: tx.maxErrorUs / 1e6,
    estErrorS: tx.estErrorUs / 1e6,
  };
  const problems: string[] = [];
  if (kernel.unsync) problems.push('STA_UNSYNC set');
  if ((tx.status & STA_CLOCKERR) !== 0) problems.push('STA_CLOCKERR set');
  if (kernel.timeError && problems.length === 0) problems.push('adjtimex returned TIME_ERROR');
  if (tx.maxErrorUs >= NTP_PHASE_LIMIT_US) problems.push(`maxerror ${kernel.maxErrorS} s, at NTP_PHASE_LIMIT (16 s)`);
  return problems.length === 0
    ? { synchronized: true, kernel }
    : { synchronized: false, kernel, why: `the kernel's clock is not synchronised: ${problems.join(', ')}` };
}

export interface MemoryPressure {
  /** Share of time some task stalled on memory, in percent, over 10 s and 60 s (PSI `some`). */
  someAvg10: number;
  someAvg60: number;
  /** Share of time all non-idle tasks stalled on memory at once (PSI `full`). */
  fullAvg10: number;
  fullAvg60: number;
}

export interface HealthSource {
  power(): Promise<PowerStatus>;
  /** The thermal zone whose type is `zone`; absent: thermal_zone0. */
  thermal(zone?: string): Promise<ThermalStatus>;
  /** The file system mounted at `mountPoint`, and the wear of the block device `device` (`mmcblk0`) when given. */
  storage(mountPoint: string, device?: string): Promise<StorageStatus>;
  clock(): Promise<ClockStatus>;
  memory(): Promise<MemoryPressure>;
}
