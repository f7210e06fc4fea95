/**
 * Watches the event loop's responsiveness with a real timer (never the board's virtual clock: a
 * stalled loop is a real-time fact). The self-diagnosis fails a service when the lag is past its bound,
 * and the watchdog keeper stops kicking, so a wedged firmware lets the hardware watchdog fire.
 */
export class EventLoopMonitor {
  private timer: NodeJS.Timeout | undefined;
  private expected = 0;
  /** Lag of the last sample, ms. */
  lagMs = 0;
  /** Wall-clock ms of the last sample: if it is old, the loop is stalled right now. */
  lastSampleAt = Date.now();

  constructor(private readonly intervalMs = 50) {}

  start(): void {
    if (this.timer) return;
    const tick = (): void => {
      const now = performance.now();
      this.lagMs = Math.max(0, now - this.expected);
      this.lastSampleAt = Date.now();
      this.expected = now + this.intervalMs;
      this.timer = setTimeout(tick, this.intervalMs);
      this.timer.unref();
    };
    this.expected = performance.now() + this.intervalMs;
    this.lastSampleAt = Date.now();
    this.timer = setTimeout(tick, this.intervalMs);
    this.timer.unref();
  }

  /** Current lag including a stall in progress that has not produced a sample yet. */
  currentLagMs(): number {
    if (!this.timer) return this.lagMs;
    const overdue = Date.now() - this.lastSampleAt - this.intervalMs;
    return Math.max(this.lagMs, overdue);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
