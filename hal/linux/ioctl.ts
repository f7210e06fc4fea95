/**
 * The ioctl half of the native addon (native/src/ioctl.cc): watchdog WDIOC_*, the GPIO character
 * device's v2 uAPI and a UART's RS-485 mode (TIOCSRS485 / TIOCGRS485), on file descriptors opened by
 * Node; adjtimex(2); and a TCP socket with SO_MARK set before it connects. It is optional like every
 * native part: where it is not built, the watchdog falls back to sysfs, the GPIO character device
 * backend reports ERR_HAL_UNSUPPORTED naming the build step, and a guard with a probe refuses to start.
 */
import { HalUnsupportedError } from '../errors.js';
import type { KernelTimex } from '../health.js';
import type { SerialRs485 } from '../rs485.js';
import { loadNativeAddon, nativeAddonCandidates } from './native-addon.js';

export interface WatchdogSupport {
  identity: string;
  /** WDIOF_* bits the driver supports. */
  options: number;
  firmwareVersion: number;
}

export interface GpioChipInfo {
  name: string;
  label: string;
  lines: number;
}

export interface GpioLineInfo {
  name: string;
  consumer: string;
  offset: number;
  /** GPIO_V2_LINE_FLAG_* bits. */
  flags: number;
}

export interface GpioEdgeEvent {
  rising: boolean;
  timestampNs: bigint;
  seqno: number;
}

export interface IoctlBinding {
  wdtSetTimeout(fd: number, seconds: number): number;
  wdtGetTimeout(fd: number): number;
  wdtGetTimeLeft(fd: number): number;
  wdtGetSupport(fd: number): WatchdogSupport;
  wdtGetBootStatus(fd: number): number;
  gpioChipInfo(chipFd: number): GpioChipInfo;
  gpioLineInfo(chipFd: number, offset: number): GpioLineInfo;
  gpioRequestLine(chipFd: number, offset: number, consumer: string, flags: number, outputValue: boolean | null, debounceUs: number): number;
  gpioSetConfig(lineFd: number, flags: number, outputValue: boolean | null): void;
  gpioGetValue(lineFd: number): number;
  gpioSetValue(lineFd: number, value: boolean): void;
  /** Absent in an addon built from sources without the RS-485 ioctls. */
  serialGetRs485?: (fd: number) => SerialRs485;
  /** Returns what the kernel applied (it sanitises the request). Absent like serialGetRs485. */
  serialSetRs485?: (fd: number, flags: number, delayRtsBeforeSend: number, delayRtsAfterSend: number) => SerialRs485;
  EdgeWatch: new (lineFd: number, onEvents: (events: GpioEdgeEvent[]) => void) => { close(): void };
  /** Absent in an addon built from sources older than native/src/timex.cc. */
  adjtimexRead?: () => KernelTimex;
  /**
   * An unconnected non-blocking TCP socket (AF_INET or AF_INET6) with SO_MARK `mark`, as a file
   * descriptor for `new net.Socket({ fd })`; EPERM without CAP_NET_ADMIN (or CAP_NET_RAW, Linux 5.17 on). Absent in an addon built
   * from sources older than native/src/socket_mark.cc.
   */
  markedTcpSocket?: (family: 4 | 6, mark: number) => number;
}

/** linux/gpio.h, enum gpio_v2_line_flag */
export const GPIO_V2_LINE_FLAG_ACTIVE_LOW = 1 << 1;
export const GPIO_V2_LINE_FLAG_INPUT = 1 << 2;
export const GPIO_V2_LINE_FLAG_OUTPUT = 1 << 3;
export const GPIO_V2_LINE_FLAG_EDGE_RISING = 1 << 4;
export const GPIO_V2_LINE_FLAG_EDGE_FALLING = 1 << 5;

const ADDON_FILE = 'handcheck_ioctl.node';
const ADDON_ENV = 'HANDCHECK_IOCTL_ADDON';

let binding: IoctlBinding | undefined;

/** The addon, or undefined where it is not built (callers with a fallback use this). */
export function ioctlAddon(): IoctlBinding | undefined {
  if (binding) return binding;
  const addon = loadNativeAddon<IoctlBinding>(ADDON_FILE, ADDON_ENV);
  if (addon.state === 'unloadable') {
    throw new HalUnsupportedError(`the ioctl addon ${addon.path} cannot be loaded: ${addon.reason}; rebuild it with "npm run build:native"`, {
      target: addon.path,
      cause: addon.cause,
    });
  }
  if (addon.state === 'loaded') binding = addon.binding;
  return binding;
}

/** The addon, or ERR_HAL_UNSUPPORTED saying that `purpose` needs it and how to build it. */
export function requireIoctlAddon(purpose: string): IoctlBinding {
  const addon = ioctlAddon();
  if (addon) return addon;
  throw new HalUnsupportedError(
    `${purpose} needs the ioctl addon, which is not built (looked for ${nativeAddonCandidates(ADDON_FILE, ADDON_ENV).join(', ')}); build it with "npm run build:native" (Debian packages build-essential and python3)`,
    { target: ADDON_FILE },
  );
}
