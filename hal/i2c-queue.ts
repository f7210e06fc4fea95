/**
 * The order of transfers on one I2C bus, shared by the Linux and the simulated bus. One transfer at
 * a time in call order; each caller waits under its own deadline counted from the call. A deadline
 * frees the caller, not the bus: the transfer in the kernel cannot be canceled (i2c-bus runs it on a
 * libuv worker until the adapter driver gives up - up to its `adap->timeout`, 1 s by default,
 * i2c-core-base.c i2c_register_adapter), so the bus stays held until then. While it is, new
 * transfers fail at once with ERR_HAL_BUS_HELD instead of piling up behind it, and a queued transfer
 * whose caller has given up never starts.
 */
import type { Clock } from './clock.js';
import { withDeadline } from './deadline.js';
import { HalBusHeldError, HalClosedError } from './errors.js';

/** A transfer that outlived its caller and still occupies the bus. */
export interface HeldTransfer {
  what: string;
  target: string;
  /** Board-clock ms the transfer started on the wire. */
  since: number;
}

/** What the body of a transfer may ask about itself: whether its caller still waits. */
export interface TransferState {
  readonly abandoned: boolean;
}

interface Entry extends HeldTransfer {
  abandoned: boolean;
}

export class I2cTransferQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private running: Entry | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly busId: string,
  ) {}

  /** The transfer holding the bus after its caller gave up, if there is one. */
  held(): HeldTransfer | undefined {
    const running = this.running;
    return running?.abandoned ? { what: running.what, target: running.target, since: running.since } : undefined;
  }

  run<T>(target: string, what: string, body: (state: TransferState) => Promise<T>, deadline: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<T> {
    const holder = this.held();
    if (holder) {
      return Promise.reject(
        new HalBusHeldError(
          `${what} on ${target} not started: bus ${this.busId} is still held by ${holder.what} on ${holder.target}, running for ${this.clock.now() - holder.since} ms after its caller gave up; the kernel ends it at the adapter's timeout`,
          { target },
        ),
      );
    }
    const entry: Entry = { what, target, since: 0, abandoned: false };
    const transfer = this.tail.then(async () => {
      if (entry.abandoned) throw new HalClosedError(`${what} on ${target} abandoned by its caller before it started`, { target, canceled: true });
      entry.since = this.clock.now();
      this.running = entry;
      try {
        return await body(entry);
      } finally {
        if (this.running === entry) this.running = undefined;
      }
    });
    this.tail = transfer.catch(() => undefined);
    return withDeadline(this.clock, transfer, what, target, deadline).catch((err: unknown) => {
      // A caller that gave up must not see its transfer run later: a write it was told failed
      // would otherwise still reach the chip.
      entry.abandoned = true;
      throw err;
    });
  }

  /** Settles when every transfer queued so far has ended. */
  idle(): Promise<void> {
    return this.tail.then(() => undefined);
  }
}
