/**
 * The sim board's virtual clock, shared by every simulated part. Three ways to drive it:
 * - `advance(ms)` / `advanceTo(t)`: tests move time explicitly; due timers fire in time order and
 *   the async work each one starts settles before the next fires.
 * - `runFor(ms)`: as fast as possible, jumping from timer to timer (scenarios, benchmarks).
 * - `startRealtime(speed)`: follows the wall clock times `speed`, for people and for a firmware
 *   process running on the sim board.
 */
import { type Clock, type Timer, sleepOn } from '../hal/clock.js';
import { HandcheckError } from '../config/errors.js';

/**
 * A timer in the heap. It is also the handle its caller cancels it by: a board makes a timer per I2C
 * transfer, so a handle of its own (and a closure for `cancel`) per timer would double what each costs.
 */
class Scheduled implements Timer {
  canceled = false;
  /** A one-shot timer that fired has left the heap. */
  fired = false;

  constructor(
    public seq: number,
    public due: number,
    readonly intervalMs: number | undefined,
    public fn: () => void,
    private readonly onCancel: (item: Scheduled) => void,
  ) {}

  cancel(): void {
    if (this.canceled) return;
    this.canceled = true;
    this.fn = noop;
    this.onCancel(this);
  }
}

const noop = (): void => undefined;

/**
 * One turn of the event loop: what the work a timer started does next, promises and ticks, runs
 * before the next timer fires. Not node:timers/promises' setImmediate: its argument checking took ~2%
 * of the scenario bench's CPU, at one turn per fired timer.
 */
function nextImmediate(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class ClockError extends HandcheckError {
  constructor(message: string) {
    super('ERR_SIM_CLOCK', message);
  }
}

/** Whether `a` fires before `b`: by due time, then by scheduling order. */
function before(a: Scheduled, b: Scheduled): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

/** A binary min-heap ordered by due time, then by scheduling order. */
class TimerHeap {
  private readonly items: Scheduled[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Scheduled | undefined {
    return this.items[0];
  }

  /** Keeps only the items `keep` accepts, and restores the heap order. */
  filter(keep: (item: Scheduled) => boolean): void {
    const kept = this.items.filter(keep);
    this.items.length = 0;
    for (const item of kept) this.push(item);
  }

  push(item: Scheduled): void {
    const items = this.items;
    let i = items.length;
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = items[parent]!;
      if (!before(item, above)) break;
      items[i] = above;
      i = parent;
    }
    items[i] = item;
  }

  pop(): Scheduled | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    const n = items.length;
    if (last === undefined || n === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && before(items[child + 1]!, items[child]!)) child += 1;
      const below = items[child]!;
      if (!before(below, last)) break;
      items[i] = below;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

export type ClockMode = 'manual' | 'realtime';

interface RealtimeFollow {
  speed: number;
  realAnchor: number;
  virtualAnchor: number;
  handle: { cancel(): void } | undefined;
  armedDue: number;
  /** Firing overdue timers one by one; time stands at each one's due time meanwhile. */
  catchingUp: boolean;
}

/** The longest delay Node's setTimeout honours (a signed 32-bit count of ms). */
export const maxNodeTimerMs = 2 ** 31 - 1;

export class VirtualClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly timers = new TimerHeap();
  private realtime: RealtimeFollow | undefined;
  private driving = false;
  /** Canceled timers still in the heap; a far-off timer canceled would otherwise stay until its due time. */
  private canceledInHeap = 0;
  private readonly onTimerCanceled = (item: Scheduled): void => {
    if (!item.fired) this.canceledInHeap += 1;
    if (this.canceledInHeap > 64 && this.canceledInHeap * 2 > this.timers.size) {
      this.timers.filter((t) => !t.canceled);
      this.canceledInHeap = 0;
    }
  };

  /** @param startMs virtual epoch milliseconds to start at; defaults to the wall clock now. */
  constructor(startMs: number = Date.now()) {
    this.current = startMs;
  }

  get mode(): ClockMode {
    return this.realtime ? 'realtime' : 'manual';
  }

  /** Virtual seconds per real second in realtime mode; 0 in manual mode. */
  get speed(): number {
    return this.realtime?.speed ?? 0;
  }

  now(): number {
    if (this.realtime && !this.realtime.catchingUp) {
      // Never past a timer that has not fired: on a host too busy to fire it on time, time waits for
      // it, so what that timer's work schedules next (the next I2C transfer's end) still comes before
      // a deadline set earlier, as on the board.
      const followed = Math.min(this.followed(this.realtime), this.nextDue());
      if (followed > this.current) this.current = followed;
    }
    return this.current;
  }

  /** Due time of the earliest timer not canceled; Infinity when none is pending. */
  private nextDue(): number {
    return this.earliest()?.due ?? Infinity;
  }

  /** The earliest timer not canceled, left in the heap; the canceled ones above it are dropped. */
  private earliest(): Scheduled | undefined {
    for (;;) {
      const next = this.timers.peek();
      if (!next?.canceled) return next;
      this.timers.pop();
      this.canceledInHeap -= 1;
    }
  }

  private followed({ speed, realAnchor, virtualAnchor }: RealtimeFollow): number {
    return virtualAnchor + (performance.now() - realAnchor) * speed;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.schedule(fn, ms, undefined);
  }

  setInterval(fn: () => void, ms: number): Timer {
    if (!(ms > 0)) throw new ClockError(`interval must be positive, got ${ms}`);
    return this.schedule(fn, ms, ms);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal) return sleepOn(this, ms, signal);
    // The common wait (every I2C transfer's wire time): the timer's callback is the promise's resolve.
    return new Promise((resolve) => {
      this.schedule(resolve, ms, undefined);
    });
  }

  /** Timers not yet fired or canceled. */
  get pending(): number {
    return this.timers.size - this.canceledInHeap;
  }

  private schedule(fn: () => void, ms: number, intervalMs: number | undefined): Timer {
    const item = new Scheduled(this.seq++, this.now() + Math.max(0, ms), intervalMs, fn, this.onTimerCanceled);
    this.timers.push(item);
    if (this.realtime && item.due < this.realtime.armedDue) this.rearmRealtime();
    return item;
  }

  /** Fires the earliest timer if it is due by `limit`; returns false when none is. */
  private fireNext(limit: number): boolean {
    const next = this.earliest();
    if (!next || next.due > limit) return false;
    this.timers.pop();
    if (next.due > this.current) this.current = next.due;
    if (next.intervalMs !== undefined) {
      next.due += next.intervalMs;
      next.seq = this.seq++;
      this.timers.push(next);
    } else next.fired = true;
    next.fn();
    return true;
  }

  /** Moves time forward by `ms`, firing due timers in order and letting their async work settle. */
  advance(ms: number): Promise<void> {
    if (!(ms >= 0)) return Promise.reject(new ClockError(`cannot advance by ${ms} ms`));
    return this.advanceTo(this.current + ms);
  }

  async advanceTo(targetMs: number): Promise<void> {
    if (this.realtime) throw new ClockError('cannot advance a clock that follows real time; stop it first');
    if (this.driving) throw new ClockError('the clock is already being advanced');
    this.driving = true;
    try {
      await nextImmediate();
      while (this.fireNext(targetMs)) await nextImmediate();
      if (targetMs > this.current) this.current = targetMs;
    } finally {
      this.driving = false;
    }
  }

  /**
   * Runs virtual time as fast as possible until `work` settles, `stepMs` at a time, letting async
   * work settle between steps; returns or throws its outcome. Computing costs no virtual time, so a
   * busy host cannot make a simulated part look late (real I/O waits are not the sim's and are not
   * waited for).
   */
  async runUntil<T>(work: Promise<T>, { stepMs = 1, limitMs = 60_000 }: { stepMs?: number; limitMs?: number } = {}): Promise<T> {
    let settled = false;
    const observed = work.finally(() => {
      settled = true;
    });
    observed.catch(() => undefined);
    await nextImmediate();
    for (let ran = 0; !settled; ran += stepMs) {
      if (ran >= limitMs) throw new ClockError(`work did not settle within ${limitMs} ms of virtual time`);
      await this.advance(stepMs);
    }
    return observed;
  }

  /** Runs `ms` of virtual time as fast as possible; same as `advance`, named for intent. */
  runFor(ms: number): Promise<void> {
    return this.advance(ms);
  }

  /**
   * Follows the wall clock at `speed` virtual ms per real ms until `stopRealtime`. While it follows,
   * pending virtual timers keep the process alive, as a running board does.
   */
  startRealtime(speed = 1): void {
    if (!(speed > 0)) throw new ClockError(`speed must be positive, got ${speed}`);
    this.stopRealtime();
    this.realtime = { speed, realAnchor: performance.now(), virtualAnchor: this.current, handle: undefined, armedDue: Infinity, catchingUp: false };
    this.rearmRealtime();
  }

  stopRealtime(): void {
    if (!this.realtime) return;
    this.now();
    this.realtime.handle?.cancel();
    this.realtime = undefined;
  }

  private rearmRealtime(): void {
    const rt = this.realtime;
    if (!rt || rt.catchingUp) return;
    rt.handle?.cancel();
    rt.handle = undefined;
    rt.armedDue = Infinity;
    const next = this.timers.peek();
    if (!next) return;
    const due = next.due;
    rt.armedDue = due;
    const fire = (): void => {
      if (this.realtime !== rt) return;
      rt.handle = undefined;
      rt.armedDue = Infinity;
      this.catchUp(rt, this.followed(rt));
    };
    // Node fires a timer set past 2^31-1 ms after 1 ms instead (TimeoutOverflowWarning): wait the
    // longest it can, then rearm for what is left.
    const realDelay = Math.min(maxNodeTimerMs, Math.max(0, (due - this.now()) / rt.speed));
    if (realDelay >= 1) {
      const timer = setTimeout(fire, realDelay);
      rt.handle = { cancel: () => clearTimeout(timer) };
      return;
    }
    // Node's timers count whole milliseconds: a wait shorter than one (an I2C transfer's wire time)
    // would take a full millisecond. Check the time on every turn of the event loop instead.
    let live = true;
    const spin = (): void => {
      if (!live || this.realtime !== rt) return;
      if (this.followed(rt) >= due) fire();
      else setImmediate(spin);
    };
    setImmediate(spin);
    rt.handle = { cancel: () => (live = false) };
  }

  /**
   * Fires the timers due by `limit` one at a time, letting the async work each one starts settle
   * before the next, with the clock standing at each timer's due time. When the host was too busy
   * to fire them on time, a simulated part's answer (due first) still lands before a deadline (due
   * later), as on the board, instead of all overdue timers firing at the late wall-clock time.
   */
  private catchUp(rt: RealtimeFollow, limit: number): void {
    if (this.realtime !== rt) return;
    rt.catchingUp = true;
    if (this.fireNext(limit)) {
      setImmediate(() => this.catchUp(rt, limit));
      return;
    }
    rt.catchingUp = false;
    this.now();
    this.rearmRealtime();
  }
}
