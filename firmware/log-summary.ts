/**
 * A log line that a client can make the firmware write at will (garbage on the Modbus port, a flood
 * of connects) is written at most once per window; the ones in between are counted and the next line
 * says how many there were, so a flood costs a line per window instead of a line per connection.
 */
import type { Logger } from 'pino';

export class LogSummary {
  private windowStart: number | undefined;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    private readonly level: 'info' | 'warn',
    private readonly msg: string,
    private readonly everyMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Logs `context` with the message, or counts it into the next line if one was logged this window. */
  note(context: Record<string, unknown>): void {
    const now = this.now();
    if (this.windowStart !== undefined && now - this.windowStart < this.everyMs) {
      this.suppressed += 1;
      return;
    }
    const more = this.suppressed;
    this.windowStart = now;
    this.suppressed = 0;
    this.logger[this.level](more > 0 ? { ...context, alsoSince: more } : context, more > 0 ? `${this.msg} (and ${more} more since the last such line)` : this.msg);
  }
}
