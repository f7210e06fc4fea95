/**
 * The hardware watchdog (Linux /dev/watchdog semantics).
 *
 * Rules:
 * - `open` arms it: from then on the board resets unless `kick` is called within the timeout.
 * - `setTimeout` returns the timeout the hardware actually applied, which may be lower than asked
 *   (the Raspberry Pi's BCM2835 watchdog clamps near 15 s). Callers must kick within that value.
 * - `close({ magic: true })` writes the magic character 'V' first, which disarms watchdogs that honour
 *   it; `close()` without it leaves the watchdog armed (the board resets unless reopened and kicked),
 *   which is what a crashed firmware should get.
 * - `timeLeft` rejects with ERR_HAL_UNSUPPORTED where the driver lacks WDIOC_GETTIMELEFT.
 * - `setTimeout` above the driver's maximum rejects with ERR_HAL_INVALID_ARG (EINVAL), as the Pi's
 *   bcm2835_wdt does above 15 s; the timeout in force is then unchanged.
 */

/** linux/watchdog.h: in the boot status, the last reset was this watchdog's. */
export const WDIOF_CARDRESET = 0x0020;

export interface WatchdogInfo {
  /** Driver identity, as WDIOC_GETSUPPORT reports it. */
  identity: string;
  /** The timeout in force, in seconds. */
  timeoutS: number;
  /**
   * WDIOC_GETBOOTSTATUS: WDIOF_* bits the driver found at boot; WDIOF_CARDRESET (0x20) means the last
   * reset was this watchdog's. Absent where the backend cannot tell.
   */
  bootStatus?: number;
}

export interface Watchdog {
  readonly target: string;
  open(): Promise<WatchdogInfo>;
  kick(): Promise<void>;
  /** Requests a timeout in seconds; resolves with the timeout applied. */
  setTimeout(seconds: number): Promise<number>;
  getTimeout(): Promise<number>;
  /** Seconds until the watchdog fires. */
  timeLeft(): Promise<number>;
  close(options?: { magic?: boolean }): Promise<void>;
}
