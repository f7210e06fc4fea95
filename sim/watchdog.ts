/**
 * A simulated hardware watchdog with the semantics of Linux /dev/watchdog: opening arms it (a second
 * opener gets EBUSY, watchdog_dev.c watchdog_open), a kick restarts the countdown, and the magic
 * close disarms it. When the countdown runs out the board resets.
 *
 * The timeout follows the driver. bcm2835_wdt (drivers/watchdog/bcm2835_wdt.c) counts at most
 * `WDOG_TICKS_TO_SECS(PM_WDOG_TIME_SET)` = 0xfffff >> 16 = 15 s, sets `max_timeout` to that and no
 * `max_hw_heartbeat_ms`, so the watchdog core refuses anything longer with EINVAL
 * (watchdog_dev.c watchdog_set_timeout / watchdog_timeout_invalid) - it never clamps - and it starts
 * with its `.timeout` of 15 s in force. A generic driver with `max_hw_heartbeat_ms` has longer
 * timeouts emulated by the core, so any timeout of at least 1 s is accepted.
 *
 * Its boot status (WDIOC_GETBOOTSTATUS, watchdog_dev.c: `wdd->bootstatus`) follows the driver too:
 * a driver that reads its reset reason at probe reports WDIOF_CARDRESET after a reset it caused
 * (i6300esb.c esb_initdevice, from the timeout bit); bcm2835_wdt never sets it (bcm2835_wdt_probe
 * only marks WDOG_HW_RUNNING), so on every Pi it reads 0 whatever reset the board.
 */
import type { Clock, Timer } from '../hal/clock.js';
import { HalBusBusyError, HalClosedError, HalInvalidArgumentError } from '../hal/errors.js';
import { type Watchdog, type WatchdogInfo, WDIOF_CARDRESET } from '../hal/watchdog.js';
import type { FaultRegistry } from './faults.js';

export const watchdogFaultKinds = [
  { kind: 'starve' as const, description: 'kicks never reach the watchdog, as when the firmware stalls; the board resets' },
];

export interface SimWatchdogOptions {
  /** Fault target; default `watchdog`. */
  faultTarget?: string;
  /** The timeout in force before anyone sets one. Default 10 s. */
  timeoutS?: number;
  /** Longer timeouts are refused with EINVAL; absent, any timeout is accepted. */
  maxTimeoutS?: number;
  identity?: string;
  /** The driver reports WDIOF_CARDRESET after a reset it caused; default true. */
  reportsCardReset?: boolean;
  /** Called when the countdown runs out. */
  onExpire: () => void;
}

export class SimWatchdog implements Watchdog {
  readonly target: string;
  private readonly faultTarget: string;
  private timeoutS: number;
  private readonly maxTimeoutS: number | undefined;
  private readonly identity: string;
  private armed = false;
  private open_ = false;
  private deadline = 0;
  private timer: Timer | undefined;
  /** Kicks that reached the hardware, for tests and the status page. */
  kicks = 0;
  expiries = 0;
  /** The last reset of the board was this watchdog's: WDIOF_CARDRESET in the boot status. */
  private cardReset = false;

  constructor(
    device: string,
    private readonly clock: Clock,
    private readonly faults: FaultRegistry,
    private readonly options: SimWatchdogOptions,
  ) {
    this.target = `watchdog:${device}`;
    this.faultTarget = options.faultTarget ?? 'watchdog';
    this.timeoutS = options.timeoutS ?? 10;
    this.maxTimeoutS = options.maxTimeoutS;
    this.identity = options.identity ?? 'Simulated Watchdog';
    faults.register(this.faultTarget, watchdogFaultKinds);
  }

  get isArmed(): boolean {
    return this.armed;
  }

  private restart(): void {
    this.timer?.cancel();
    this.deadline = this.clock.now() + this.timeoutS * 1000;
    this.timer = this.clock.setTimeout(() => this.expire(), this.timeoutS * 1000);
  }

  private expire(): void {
    this.timer = undefined;
    this.armed = false;
    this.open_ = false;
    this.expiries += 1;
    this.cardReset = this.options.reportsCardReset ?? true;
    this.options.onExpire();
  }

  private ensureOpen(): void {
    if (!this.open_) throw new HalClosedError(`${this.target} is not open`, { target: this.target, canceled: true });
  }

  async open(): Promise<WatchdogInfo> {
    await Promise.resolve();
    if (this.open_) throw new HalBusBusyError(`${this.target} is already open (the device allows one opener)`, { target: this.target, errno: 'EBUSY' });
    this.open_ = true;
    this.armed = true;
    this.restart();
    return { identity: this.identity, timeoutS: this.timeoutS, bootStatus: this.cardReset ? WDIOF_CARDRESET : 0 };
  }

  async kick(): Promise<void> {
    await Promise.resolve();
    this.ensureOpen();
    if (this.faults.active(this.faultTarget, 'starve')) return;
    this.kicks += 1;
    this.restart();
  }

  async setTimeout(seconds: number): Promise<number> {
    await Promise.resolve();
    this.ensureOpen();
    if (!Number.isInteger(seconds) || seconds < 1) {
      throw new HalInvalidArgumentError(`watchdog timeout must be a whole number of seconds >= 1, got ${seconds}`, { target: this.target, errno: 'EINVAL' });
    }
    if (this.maxTimeoutS !== undefined && seconds > this.maxTimeoutS) {
      throw new HalInvalidArgumentError(`watchdog timeout ${seconds} s is above the ${this.maxTimeoutS} s the hardware counts; ${this.timeoutS} s stays in force`, {
        target: this.target,
        errno: 'EINVAL',
      });
    }
    this.timeoutS = seconds;
    this.restart();
    return this.timeoutS;
  }

  async getTimeout(): Promise<number> {
    await Promise.resolve();
    return this.timeoutS;
  }

  async timeLeft(): Promise<number> {
    await Promise.resolve();
    this.ensureOpen();
    return Math.max(0, Math.floor((this.deadline - this.clock.now()) / 1000));
  }

  /** Seconds left while armed, without the open check; for status displays. */
  peekTimeLeft(): number | null {
    return this.armed ? Math.max(0, (this.deadline - this.clock.now()) / 1000) : null;
  }

  async close(options: { magic?: boolean } = {}): Promise<void> {
    await Promise.resolve();
    if (!this.open_) return;
    this.open_ = false;
    if (options.magic) {
      this.armed = false;
      this.timer?.cancel();
      this.timer = undefined;
    }
  }
}
