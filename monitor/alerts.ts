/**
 * Alerts: one per target and episode (from the moment it went down until it came back up), with an
 * id that stays the same for the episode, so a receiver can deduplicate retries and match the
 * `resolved` update to its `firing` alert.
 *
 * Delivery, per sink, from the outbox (monitor/outbox.ts), which keeps only each alert's newest
 * version:
 * - `notify` records the alert and returns at once; nothing a sink does reaches the probes.
 * - Each sink has its own lane: up to `concurrency` deliveries at once, never two for one target (a
 *   target's alerts stay in order), so a request that hangs holds up only its own target on its own
 *   sink. Each attempt has the sink's timeout.
 * - A failed attempt is retried after `backoffMs`, doubling up to `maxBackoffMs`, `retries` times;
 *   then this process gives up on it (it stays owed, and goes out with the alert's next update or
 *   after a restart).
 * - Newer news supersedes: once a recovery is known, a firing alert not yet delivered is never sent;
 *   its resolution is (an attempt in flight is abandoned for it).
 * - Past `queueLimit` owed alerts in a sink, the oldest is dropped.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { MonitorClosedError } from './errors.js';
import type { Outbox } from './outbox.js';
import type { TargetState } from './state.js';

export type AlertStatus = 'firing' | 'resolved';

export interface Alert {
  /** The same for every update of one episode of one target. */
  id: string;
  /**
   * `down`: an episode of the target's connects failing. `reboot`: the appliance booted again (an
   * event: it carries its own `endsAt`). `reboot-loop`: the target's time in the `reboot-loop` state,
   * resolved when it leaves it.
   */
  kind: 'down' | 'reboot' | 'reboot-loop';
  status: AlertStatus;
  target: string;
  host: string;
  port: number;
  labels: Readonly<Record<string, string>>;
  /** The transition this version of the alert reports. */
  from: TargetState;
  to: TargetState;
  /** True when the target is up (the alert is resolved). */
  healthy: boolean;
  /** What TCP showed, in words. */
  reason: string;
  /** What the appliance said was wrong, when the target asks it (`why`). */
  cause?: string;
  /** `reboot`: how many boots the count rose by since it was last seen (more than 1 when reboots came between two reads). */
  reboots?: number;
  /** When this version's transition happened, ISO 8601. */
  at: string;
  /** When the episode began, ISO 8601. */
  startsAt: string;
  /** When it ended: on resolved alerts, and on events (reboots), until when they stay active. */
  endsAt?: string;
  /** The monitor's page for the target, when the monitor knows its own address. */
  generatorURL?: string;
}

export type AlertOutcome = 'delivered' | 'retried' | 'failed' | 'dropped' | 'superseded';

export interface AlertSink {
  /** Stable across restarts: the outbox keys what the sink is owed by it. */
  readonly name: string;
  /** Firing alerts are delivered again this often while they fire (Alertmanager forgets them otherwise). */
  readonly resendMs?: number;
  /** One attempt; rejects when it failed or `signal` aborted. */
  deliver(alert: Alert, signal: AbortSignal): Promise<void>;
}

/** Stable per target and episode start: the same after a restart, different for the next episode. */
export function alertId(target: string, startsAtMs: number): string {
  return createHash('sha256').update(`${target}\n${startsAtMs}`).digest('hex').slice(0, 24);
}

export interface AlerterOptions {
  sinks: readonly AlertSink[];
  outbox: Outbox;
  logger: Logger;
  retries?: number;
  backoffMs?: number;
  maxBackoffMs?: number;
  concurrency?: number;
  queueLimit?: number;
  onOutcome?: (sink: string, outcome: AlertOutcome) => void;
  now?: () => number;
}

type Settings = Required<Omit<AlerterOptions, 'sinks' | 'outbox' | 'onOutcome'>> & Pick<AlerterOptions, 'onOutcome' | 'outbox'>;

interface Entry {
  alert: Alert;
  owed: boolean;
  delivered: AlertStatus | undefined;
  attempts: number;
  /** Not before this (backoff), ms since the epoch. */
  notBefore: number;
  /** Retries exhausted in this process. */
  gaveUp: boolean;
  /** When a delivered firing alert is due again (sinks with `resendMs`). */
  resendAt: number | undefined;
  inFlight: AbortController | undefined;
}

class SinkLane {
  private readonly entries = new Map<string, Entry>();
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private readonly settled = new Set<() => void>();
  private readonly flights = new Set<Promise<void>>();

  constructor(
    readonly sink: AlertSink,
    private readonly settings: Settings,
    private readonly signal: AbortSignal,
  ) {
    for (const row of settings.outbox.rows(sink.name)) {
      this.entries.set(row.alert.id, this.entryOf(row.alert, row.owed, row.delivered));
    }
  }

  private entryOf(alert: Alert, owed: boolean, delivered: AlertStatus | undefined): Entry {
    const resendAt = !owed && delivered === 'firing' && this.sink.resendMs !== undefined ? this.settings.now() : undefined;
    return { alert, owed, delivered, attempts: 0, notBefore: 0, gaveUp: false, resendAt, inFlight: undefined };
  }

  /** Owed alerts this process still tries to deliver, in flight or waiting. */
  get owed(): number {
    let n = 0;
    for (const entry of this.entries.values()) if (entry.owed && !entry.gaveUp) n++;
    return n;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  update(alert: Alert): void {
    const entry = this.entries.get(alert.id);
    if (!entry) {
      this.entries.set(alert.id, this.entryOf(alert, true, undefined));
      this.settings.outbox.put(this.sink.name, alert, true, undefined);
      this.trim();
    } else {
      const news = alert.status !== entry.alert.status;
      entry.alert = alert;
      if (news || (entry.owed && entry.gaveUp)) {
        entry.owed = alert.status !== entry.delivered || entry.owed;
        entry.attempts = 0;
        entry.notBefore = 0;
        entry.gaveUp = false;
        // What is on the wire says something no longer true: abandon it for the news.
        if (news) entry.inFlight?.abort();
      }
      this.settings.outbox.put(this.sink.name, alert, entry.owed, entry.delivered);
    }
    this.pump();
  }

  private trim(): void {
    let owed = this.owed;
    for (const [id, entry] of this.entries) {
      if (owed <= this.settings.queueLimit) return;
      if (!entry.owed || entry.gaveUp || entry.inFlight) continue;
      this.entries.delete(id);
      this.settings.outbox.drop(this.sink.name, id);
      owed -= 1;
      this.settings.logger.warn({ sink: this.sink.name, target: entry.alert.target, alert: id, status: entry.alert.status }, 'alert queue full; dropped the oldest alert');
      this.settings.onOutcome?.(this.sink.name, 'dropped');
    }
  }

  /** Starts every delivery that is due and allowed, and sets a timer for the next one. */
  pump(): void {
    if (this.signal.aborted) return;
    const now = this.settings.now();
    const busy = new Set<string>();
    for (const entry of this.entries.values()) if (entry.inFlight) busy.add(entry.alert.target);
    let next = Infinity;
    for (const entry of this.entries.values()) {
      if (entry.inFlight) continue;
      if (!entry.owed && entry.resendAt !== undefined && entry.resendAt <= now && entry.alert.status === 'firing') {
        entry.owed = true;
        entry.attempts = 0;
        entry.notBefore = 0;
      }
      if (!entry.owed || entry.gaveUp) {
        if (entry.resendAt !== undefined && entry.alert.status === 'firing') next = Math.min(next, entry.resendAt);
        continue;
      }
      const target = entry.alert.target;
      // A target's older alert goes first, even while it waits out a backoff.
      if (busy.has(target)) continue;
      busy.add(target);
      if (entry.notBefore > now) {
        next = Math.min(next, entry.notBefore);
        continue;
      }
      if (this.inFlight >= this.settings.concurrency) continue;
      this.start(entry);
    }
    this.arm(next, now);
    if (this.inFlight === 0 && this.owed === 0) {
      for (const resolve of this.settled) resolve();
      this.settled.clear();
    }
  }

  private arm(at: number, now: number): void {
    if (at === this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    if (at === Infinity) return;
    this.timer = setTimeout(
      () => {
        this.timerAt = Infinity;
        this.pump();
      },
      Math.max(0, at - now),
    );
    this.timer.unref();
  }

  private start(entry: Entry): void {
    const attempt = new AbortController();
    entry.inFlight = attempt;
    this.inFlight += 1;
    const sent = entry.alert;
    const flight = this.sink
      .deliver(sent, AbortSignal.any([this.signal, attempt.signal]))
      .then(
        () => this.succeeded(entry, sent),
        (err: unknown) => this.failed(entry, sent, attempt.signal.aborted, err),
      )
      .finally(() => {
        entry.inFlight = undefined;
        this.inFlight -= 1;
        this.flights.delete(flight);
        this.pump();
      });
    this.flights.add(flight);
  }

  private succeeded(entry: Entry, sent: Alert): void {
    this.settings.onOutcome?.(this.sink.name, 'delivered');
    entry.delivered = sent.status;
    entry.owed = entry.alert.status !== sent.status;
    entry.attempts = 0;
    // An event (its end given) is done once delivered: nothing resolves it later.
    const done = sent.status === 'resolved' || sent.endsAt !== undefined;
    entry.resendAt = !done && this.sink.resendMs !== undefined ? this.settings.now() + this.sink.resendMs : undefined;
    if (!this.entries.has(sent.id)) return;
    this.settings.outbox.delivered(this.sink.name, sent.id, done ? 'resolved' : sent.status, entry.owed);
    if (done && !entry.owed) this.entries.delete(sent.id);
  }

  private failed(entry: Entry, sent: Alert, superseded: boolean, err: unknown): void {
    if (this.signal.aborted) return;
    if (superseded) {
      this.settings.onOutcome?.(this.sink.name, 'superseded');
      return;
    }
    const { retries, backoffMs, maxBackoffMs, logger } = this.settings;
    entry.attempts += 1;
    const last = entry.attempts > retries;
    logger.warn(
      { sink: this.sink.name, target: sent.target, alert: sent.id, status: sent.status, attempt: entry.attempts, err: (err as Error).message },
      last ? 'alert delivery failed; giving up until the alert changes or the monitor restarts' : 'alert delivery failed; retrying',
    );
    this.settings.onOutcome?.(this.sink.name, last ? 'failed' : 'retried');
    if (last) entry.gaveUp = true;
    else entry.notBefore = this.settings.now() + Math.min(maxBackoffMs, backoffMs * 2 ** (entry.attempts - 1));
  }

  /** Resolves once nothing is in flight and nothing is owed that this process still tries. */
  idle(): Promise<void> {
    if (this.inFlight === 0 && this.owed === 0) return Promise.resolve();
    return new Promise((resolve) => this.settled.add(resolve));
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    await Promise.all(this.flights);
    for (const resolve of this.settled) resolve();
    this.settled.clear();
  }
}

export class Alerter {
  private readonly lanes: SinkLane[];
  private readonly abort = new AbortController();

  constructor(options: AlerterOptions) {
    const settings: Settings = {
      outbox: options.outbox,
      logger: options.logger,
      retries: options.retries ?? 3,
      backoffMs: options.backoffMs ?? 1000,
      maxBackoffMs: options.maxBackoffMs ?? 60_000,
      concurrency: options.concurrency ?? 4,
      queueLimit: options.queueLimit ?? 1000,
      onOutcome: options.onOutcome,
      now: options.now ?? Date.now,
    };
    const dropped = options.outbox.keepOnly(options.sinks.map((s) => s.name));
    if (dropped > 0) options.logger.info({ dropped }, 'forgot alerts owed to sinks no longer configured');
    this.lanes = options.sinks.map((sink) => new SinkLane(sink, settings, this.abort.signal));
    // What a previous run still owed goes out now.
    for (const lane of this.lanes) lane.pump();
  }

  /** Records the alert's newest version for every sink and returns at once. */
  notify(alert: Alert): void {
    if (this.abort.signal.aborted) return;
    for (const lane of this.lanes) lane.update(alert);
  }

  /** For an episode already under way at start: raises it in the sinks that have not heard of it (one added since). */
  ensure(alert: Alert): void {
    if (this.abort.signal.aborted) return;
    for (const lane of this.lanes) if (!lane.has(alert.id)) lane.update(alert);
  }

  /** Alerts owed per sink that this process still tries to deliver. */
  pending(): Record<string, number> {
    return Object.fromEntries(this.lanes.map((lane) => [lane.sink.name, lane.owed]));
  }

  /** Resolves once no sink has anything in flight or owed (for tests and orderly shutdown with a deadline). */
  async idle(): Promise<void> {
    await Promise.all(this.lanes.map((lane) => lane.idle()));
  }

  /** Abandons deliveries in flight; what is owed stays in the outbox for the next start. Idempotent. */
  async close(): Promise<void> {
    if (!this.abort.signal.aborted) this.abort.abort(new MonitorClosedError('alert delivery'));
    await Promise.all(this.lanes.map((lane) => lane.close()));
  }
}
