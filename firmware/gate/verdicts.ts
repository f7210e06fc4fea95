/**
 * Where the gate's verdicts come from: one running diagnosis at a time per service (single flight),
 * each with a deadline, and the reuse rule of claim 5. Knows nothing about sockets, so every admission
 * mode (after accept, before the SYN/ACK) asks the same source.
 *
 * A reusable verdict is withdrawn the moment something says it is no longer true - a dependency
 * changed state between diagnoses (`withdraw`), a diagnosis found a fault, the last held connection
 * ended, the gate closes - and `onWithdraw` listeners (a kernel-side verdict cache) hear of it at once.
 * An ok verdict from a diagnosis that began before a withdrawal decides nobody: its waiters, some of
 * whom connected after the firmware knew of the change, wait for a diagnosis that began after it.
 */
import type { Clock, Timer } from '../../hal/clock.js';
import { DiagnosisTimeoutError, GateClosedError } from './errors.js';
import {
  type Diagnose,
  ERR_DIAG_FAILED,
  ERR_DIAG_INVALID,
  ERR_DIAG_TIMEOUT,
  type Failure,
  SELF_DIAGNOSIS,
  type Verdict,
} from '../verdict.js';

export interface VerdictSourceOptions {
  service: string;
  diagnose: Diagnose;
  clock: Clock;
  /** Deadline of one diagnosis on `clock`. */
  timeoutMs: number;
  reuse: 'never' | 'while-held';
  /** How long, on `clock` from the start of its diagnosis, a verdict may be reused. */
  maxAgeMs: number;
  /** Called once per finished diagnosis, before the callers waiting for it see the verdict. */
  onVerdict: (verdict: Verdict) => void;
}

function errorCode(err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? (err as { code: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('ERR_') ? code : ERR_DIAG_FAILED;
}

function errorReason(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : `non-error thrown: ${String(err)}`;
}

function isVerdict(value: unknown): value is Verdict {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<Verdict>;
  return typeof v.ok === 'boolean' && Array.isArray(v.failures);
}

/** Why a reusable verdict stopped being reusable before its age limit. */
export interface Withdrawal {
  /**
   * - `component`: a component the service depends on changed state between diagnoses;
   * - `abnormal`: a diagnosis (a recheck, a new connection) found a fault;
   * - `released`: no connection admitted as ok is held any more;
   * - `closed`: the gate is closing.
   */
  cause: 'component' | 'abnormal' | 'released' | 'closed';
  /** For logs: what happened. */
  reason: string;
}

export class VerdictSource {
  private readonly options: VerdictSourceOptions;
  private flight: Promise<Verdict> | undefined;
  /** Settles the running diagnosis early (gate closing); undefined when none runs. */
  private cancelFlight: ((reason: GateClosedError) => void) | undefined;
  /** The last ok verdict as reused connections see it, built once per diagnosis, not per connection. */
  private reusableView: Verdict | undefined;
  private reusableSince = 0;
  private holders = 0;
  private closed = false;
  private readonly reusableListeners = new Set<(remainingMs: number) => void>();
  private readonly withdrawListeners = new Set<(withdrawal: Withdrawal) => void>();
  /**
   * Counts withdrawals by a component: a diagnosis that started before one may have read the part
   * before it changed, so its ok verdict decides its own waiters but is not offered for reuse.
   */
  private epoch = 0;
  private diagnosedCount = 0;
  private timeoutCount = 0;
  private last: Verdict | undefined;

  constructor(options: VerdictSourceOptions) {
    this.options = options;
  }

  /** Diagnose calls made so far. */
  get diagnosed(): number {
    return this.diagnosedCount;
  }

  /** Diagnoses that missed their deadline. */
  get timeouts(): number {
    return this.timeoutCount;
  }

  /** The verdict of the last finished diagnosis. */
  get lastVerdict(): Verdict | undefined {
    return this.last;
  }

  get running(): boolean {
    return this.flight !== undefined;
  }

  /** A connection admitted on an ok verdict is now held; while any is, that verdict may be reused. */
  hold(): void {
    this.holders++;
    if (this.holders === 1) this.reusableChanged();
  }

  /** A held connection ended. */
  release(): void {
    if (this.holders === 1) this.announceWithdrawal({ cause: 'released', reason: 'no connection admitted as ok is held' });
    this.holders--;
    if (this.holders === 0) this.reusableChanged();
  }

  /**
   * Something the source cannot see changed - a component the service depends on went bad between
   * diagnoses: the reusable verdict, if any, is dropped now, and an ok result of a diagnosis already
   * running is not taken (its waiters get the next diagnosis). The next connection is diagnosed.
   * True when a verdict was reusable.
   */
  withdraw(reason: string): boolean {
    this.epoch++;
    const withdrawn = this.reusableForMs() > 0;
    this.announceWithdrawal({ cause: 'component', reason });
    this.reusableView = undefined;
    this.reusableChanged();
    return withdrawn;
  }

  /**
   * Tells `listener` each time a verdict that was reusable stops being so before its `maxAgeMs` ran
   * out, synchronously, before any later connection is admitted. Expiry by age is not announced.
   */
  onWithdraw(listener: (withdrawal: Withdrawal) => void): () => void {
    this.withdrawListeners.add(listener);
    return () => this.withdrawListeners.delete(listener);
  }

  private announceWithdrawal(withdrawal: Withdrawal): void {
    if (this.withdrawListeners.size === 0 || this.reusableForMs() === 0) return;
    for (const listener of this.withdrawListeners) listener(withdrawal);
  }

  /**
   * Tells `listener` for how many ms (on this source's clock, from now) a new connection may reuse a
   * verdict, 0 when none may, now and whenever that changes - so that a before-mode queue can accept
   * SYNs without asking. Expiry by `maxAgeMs` is not announced: the remaining time already says it.
   */
  onReusableChange(listener: (remainingMs: number) => void): () => void {
    this.reusableListeners.add(listener);
    listener(this.reusableForMs());
    return () => this.reusableListeners.delete(listener);
  }

  private reusableForMs(): number {
    if (this.closed || this.holders === 0 || this.reusableView === undefined) return 0;
    return Math.max(0, this.reusableSince + this.options.maxAgeMs - this.options.clock.now());
  }

  private reusableChanged(): void {
    if (this.reusableListeners.size === 0) return;
    const remaining = this.reusableForMs();
    for (const listener of this.reusableListeners) listener(remaining);
  }

  /**
   * The verdict a new connection may take without a diagnosis (claim 5): the last ok verdict, while a
   * connection admitted as ok is held and the verdict is younger than `maxAgeMs`. Synchronous and
   * allocation-free, because it is on the accept path of every connection.
   */
  reusable(): Verdict | undefined {
    if (this.holders === 0 || this.reusableView === undefined) return undefined;
    if (this.options.clock.now() - this.reusableSince > this.options.maxAgeMs) {
      this.reusableView = undefined;
      return undefined;
    }
    return this.reusableView;
  }

  /** The running diagnosis, or a new one. Never rejects: every failure is an abnormal verdict. */
  diagnose(): Promise<Verdict> {
    if (this.flight) return this.flight;
    if (this.closed) return Promise.resolve(this.closedVerdict(this.options.clock.now()));
    // run() never settles synchronously (results arrive in a then callback or on a timer), so the
    // flight it clears on settling is always the one stored here.
    this.flight = this.run();
    return this.flight;
  }

  /** Stops reuse and cancels the running diagnosis; its waiters get an abnormal verdict at once. */
  close(): void {
    if (this.closed) return;
    this.announceWithdrawal({ cause: 'closed', reason: `gate of service ${this.options.service} closing` });
    this.closed = true;
    this.reusableView = undefined;
    this.reusableChanged();
    this.cancelFlight?.(new GateClosedError(this.options.service, 'self-diagnosis canceled'));
  }

  /** One diagnosis; an ok one that a withdrawal overtook hands its waiters to the next, within the first one's deadline. */
  private run(deadline = this.options.clock.now() + this.options.timeoutMs): Promise<Verdict> {
    const { clock, diagnose, timeoutMs, service } = this.options;
    const startedAt = clock.now();
    const epoch = this.epoch;
    const controller = new AbortController();
    this.diagnosedCount++;
    return new Promise<Verdict>((resolve) => {
      let settled = false;
      const settle = (verdict: Verdict, record: boolean): void => {
        if (settled) return;
        settled = true;
        timer.cancel();
        this.flight = undefined;
        this.cancelFlight = undefined;
        if (record) this.record(verdict, startedAt, epoch);
        if (record && verdict.ok && epoch !== this.epoch && !this.closed) resolve((this.flight ??= this.run(deadline)));
        else resolve(verdict);
      };
      const failed = (failure: Failure): Verdict => ({
        ok: false,
        failures: [failure],
        startedAt,
        durationMs: clock.now() - startedAt,
        reused: false,
      });
      const timer: Timer = clock.setTimeout(() => {
        const error = new DiagnosisTimeoutError(service, timeoutMs);
        this.timeoutCount++;
        controller.abort(error);
        settle(failed({ component: SELF_DIAGNOSIS, code: ERR_DIAG_TIMEOUT, reason: error.message }), true);
      }, deadline - startedAt);
      this.cancelFlight = (reason) => {
        controller.abort(reason);
        settle(this.closedVerdict(startedAt), false);
      };
      let pending: Promise<Verdict>;
      try {
        pending = Promise.resolve(diagnose(controller.signal));
      } catch (err) {
        pending = Promise.reject(err);
      }
      pending.then(
        (verdict: unknown) => {
          if (isVerdict(verdict)) {
            settle(verdict, true);
            return;
          }
          const got = verdict === null ? 'null' : typeof verdict;
          const reason = `self-diagnosis of service ${service} resolved with ${got} instead of a verdict`;
          settle(failed({ component: SELF_DIAGNOSIS, code: ERR_DIAG_INVALID, reason }), true);
        },
        (err: unknown) => settle(failed({ component: SELF_DIAGNOSIS, code: errorCode(err), reason: errorReason(err) }), true),
      );
    });
  }

  private closedVerdict(startedAt: number): Verdict {
    const error = new GateClosedError(this.options.service, 'self-diagnosis canceled');
    return {
      ok: false,
      failures: [{ component: SELF_DIAGNOSIS, code: error.code, reason: error.message }],
      startedAt,
      durationMs: this.options.clock.now() - startedAt,
      reused: false,
    };
  }

  private record(verdict: Verdict, startedAt: number, epoch: number): void {
    this.last = verdict;
    if (!verdict.ok) {
      const failed = verdict.failures.map((f) => f.component).join(', ');
      this.announceWithdrawal({ cause: 'abnormal', reason: `self-diagnosis abnormal: ${failed}` });
    }
    if (verdict.ok && this.options.reuse === 'while-held' && epoch === this.epoch) {
      this.reusableView = Object.freeze({ ...verdict, reused: true });
      // Age is measured on the gate's clock: the diagnosis may stamp `startedAt` on another one.
      this.reusableSince = startedAt;
    } else {
      this.reusableView = undefined;
    }
    this.reusableChanged();
    this.options.onVerdict(verdict);
  }
}
