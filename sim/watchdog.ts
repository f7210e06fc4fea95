/**
 * A simulated hardware watchdog with the semantics of Linux /dev/watchdog on a Raspberry Pi: opening
 * arms it, a kick restarts the countdown, the timeout is clamped to what the hardware can count
 * (`maxTimeoutS`, about 15 s on the BCM2835), and the magic close disarms it. When the countdown runs
 * out the board resets.
 */
import type { Clock, Timer } from '../hal/clock.js';
import { HalBusBusyError, HalClosedError, HalInvalidArgumentError } from '../hal/errors.js';
import type { Watchdog, WatchdogInfo } from '../hal/watchdog.js';
import type { FaultRegistry } from './faults.js';

export const watchdogFaultKinds = [
  { kind: 'starve' as const, description: 'kicks never reach the watchdog, as when the firmware stalls; the board resets' },
];

export interface SimWatchdogOptions {
  /** Fault target; default `watchdog`. */
  faultTarget?: string;
  timeoutS?: number;
  maxTimeoutS?: number;
  identity?: string;
  /** Called when the countdown runs out. */
  onExpire: () => void;
}

export class SimWatchdog implements Watchdog {
  readonly target: string;
  private readonly faultTarget: string;
  private timeoutS: number;
  private readonly maxTimeoutS: number;
  private readonly identity: string;
  private armed = false;
  private open_ = false;
  private deadline = 0;
  private timer: Timer | undefined;
  /** Kicks that reached the hardware, for tests and the status page. */
  kicks = 0;
  expiries = 0;

  constructor(
    device: string,
    private readonly clock: Clock,
    private readonly faults: FaultRegistry,
    private readonly options: SimWatchdogOptions,
  ) {
    this.target = `watchdog:${device}`;
    this.faultTarget = options.faultTarget ?? 'watchdog';
    this.timeoutS = options.timeoutS ?? 10;
    this.maxTimeoutS = options.maxTimeoutS ?? 15;
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
    return { identity: this.identity, timeoutS: this.timeoutS };
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
    this.timeoutS = Math.min(seconds, this.maxTimeoutS);
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
