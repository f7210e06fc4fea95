/**
 * The contract every chip driver keeps. A driver is given HAL handles (a bus and an address, a GPIO
 * line, a serial port, a network interface) and never knows whether they are real or simulated.
 *
 * Rules:
 * - `identify` proves the expected part is there, or rejects: ERR_HAL_NACK when nothing answers,
 *   ERR_HAL_IDENTITY when something else answers.
 * - `read` returns values in SI-derived units named in the key (`temperatureC`, `busVoltageV`,
 *   `currentA`, `pressurePa`, `rxPowerMw`, ...); booleans for flags.
 * - Every method takes `DriverCallOptions`; transport errors are HalErrors, never strings.
 */

export interface DriverCallOptions {
  /** Upper bound for each bus transfer the call makes. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface Identity {
  /** The part found, e.g. `TMP102`, `BME280`, `SFP FINISAR FTLF8519P3BNL`. */
  part: string;
  details?: Record<string, string | number | boolean>;
  /** What the part gets wrong without disproving its identity (an SFP's bad CC_EXT); the check degrades. */
  warnings?: string[];
}

export type ReadingValue = number | boolean | string;
export type Reading = Record<string, ReadingValue>;

export interface Driver<R extends Reading = Reading> {
  /** Where the part sits, for messages: `i2c-1@0x48`, `serial:/dev/ttyAMA0`, `net:eth0`. */
  readonly target: string;
  identify(options?: DriverCallOptions): Promise<Identity>;
  read(options?: DriverCallOptions): Promise<R>;
  /**
   * Identity and reading for a diagnosis, in fewer bus bytes than `identify` then `read`: the full
   * identity the first time and whenever the part shows it lost power or was replaced (a register it
   * resets on power loss, a checksum, a presence edge), otherwise the identity proven last with the
   * bytes that would have shown the change. Rejects as `identify` and `read` do. Drivers without it
   * are diagnosed by `identify` then `read`.
   */
  diagnose?(options?: DriverCallOptions): Promise<{ identity: Identity; reading: R }>;
}
