/**
 * The device-state manager (patent item 12): keeps each component's state - ok, degraded, failed or
 * unknown, with its reason, last reading and when - and diagnoses components on request. Each
 * component's diagnosis runs under its own deadline on the board clock; components on different buses
 * run in parallel, transfers on one I2C bus are serialised by the bus itself. A component already
 * being diagnosed is not diagnosed twice: later callers share the running diagnosis, which is
 * canceled only when every caller that waits for it has aborted.
 *
 * States stay current without connections: event-capable components (a status line's edge, a carrier
 * change) are re-diagnosed the moment the part signals, and `startRefresh` re-diagnoses everything on
 * an interval of the board clock. A diagnosis that was running when its part signalled may have read
 * the part before the change, so nobody joins it: they wait for the one that starts after it.
 *
 * A signal that itself asserts a fault (LOS or TX_FAULT high, power-good low, the carrier lost) makes
 * the component failed at once, before its re-diagnosis has moved a byte, and `signalledFailures`
 * says so until a diagnosis that started after the signal, or a later signal, replaces it: a
 * connect's self-diagnosis refuses on it without reading anything. Only failures are taken from a
 * signal, never health.
 */
import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import type { BoardHal } from '../hal/board.js';
import type { Clock, Timer } from '../hal/clock.js';
import type { ComponentKind } from '../config/board-config.js';
import { whileWanted, withDeadline } from '../hal/deadline.js';
import type { Identity, Reading } from '../hal/drivers/driver.js';
import { HalError } from '../hal/errors.js';
import { HandcheckError } from '../config/errors.js';
import type { ComponentCheck, WatchdogHealth } from './components.js';
import type { DependencyChange } from './gate/gate.js';
import { componentDriver, createComponentCheck } from './component-kinds.js';

export type ComponentStateName = 'ok' | 'degraded' | 'failed' | 'unknown';

export interface ComponentState {
  id: string;
  kind: ComponentKind;
  description: string | undefined;
  state: ComponentStateName;
  /** Why it is not ok; empty when ok. */
  reason: string;
  /** The ERR_* code when a HAL or driver error made it fail. */
  code: string | undefined;
  reading: Reading | undefined;
  identity: Identity | undefined;
  /** Board-clock ms of the last diagnosis, null before the first. */
  diagnosedAt: number | null;
  durationMs: number | null;
  /** Board-clock ms since the component has been in this state. */
  since: number;
}

export class UnknownComponentError extends HandcheckError {
  constructor(id: string, known: string[]) {
    super('ERR_UNKNOWN_COMPONENT', `no component "${id}"; components: ${known.join(', ')}`);
  }
}

export interface DeviceStateManagerOptions {
  board: BoardHal;
  logger: Logger;
  /**
   * What the watchdog keeper says of the board's watchdog, for a `watchdog` component. Default: failed,
   * "no watchdog keeper running" - the firmware's keeper is what kicks it.
   */
  watchdogHealth?: () => WatchdogHealth;
}

const noKeeper = (): WatchdogHealth => ({ health: 'failed', reason: 'no watchdog keeper running', reading: {} });


/** One component's diagnosis in flight, shared by every caller that asked for it meanwhile. */
interface RunningDiagnosis {
  result: Promise<ComponentState>;
  abort: AbortController;
  /** Callers still waiting; at 0 after an abort, nobody wants the result and the run is canceled. */
  waiters: number;
  /** Board-clock start, to tell a stuck one. */
  since: number;
  /** Its diagnosis has ended: a caller leaving now has nothing to cancel, and `abort` may serve the next run. */
  ended: boolean;
}

export type StateListener = (state: Readonly<ComponentState>, previous: ComponentStateName) => void;

/** A component's part signalled a change (`event`, for logs); its re-diagnosis has been started. */
export type EventListener = (id: string, event: string) => void;

export class DeviceStateManager {
  private readonly checks = new Map<string, ComponentCheck>();
  /** Components whose recent state a connect may take (serial peers), with the age it may have. */
  private readonly maxStateAge = new Map<string, number>();
  private readonly current = new Map<string, ComponentState>();
  private readonly running = new Map<string, RunningDiagnosis>();
  /**
   * Per component, the abort controller of its last run when that run ended without aborting it, for
   * the next run: Node 20 takes microseconds to make an AbortSignal and its first listener, more than
   * the rest of a run's bookkeeping, and the sensors are diagnosed ten times a second.
   */
  private readonly spareAborts = new Map<string, AbortController>();
  private readonly listeners = new Set<StateListener>();
  private readonly eventListeners = new Set<EventListener>();
  /** Components whose running diagnosis began before their part signalled a change. */
  private readonly stale = new Set<string>();
  /** The failed states parts signalled since the diagnosis running or last started for them began. */
  private readonly signalledFaults = new Map<string, ComponentState>();
  private readonly unwatch: Array<() => void> = [];
  private refreshTimer: Timer | undefined;
  private readonly board: BoardHal;
  private readonly logger: Logger;
  private closed = false;

  constructor({ board, logger, watchdogHealth = noKeeper }: DeviceStateManagerOptions) {
    this.board = board;
    this.logger = logger;
    const now = board.clock.now();
    for (const component of board.config.components) {
      const check = createComponentCheck(component, { board, watchdogHealth });
      this.checks.set(component.id, check);
      const maxAge = componentDriver(component).stateMaxAgeMs?.(component);
      if (maxAge) this.maxStateAge.set(component.id, maxAge);
      if (check.watch) this.unwatch.push(check.watch((event, fault) => this.signalled(component.id, event, fault)));
      this.current.set(component.id, {
        id: component.id,
        kind: component.kind,
        description: component.description,
        state: 'unknown',
        reason: 'not diagnosed yet',
        code: undefined,
        reading: undefined,
        identity: undefined,
        diagnosedAt: null,
        durationMs: null,
        since: now,
      });
    }
  }

  /** The board's clock, which states' times are on. */
  get clock(): Clock {
    return this.board.clock;
  }

  get componentIds(): string[] {
    return [...this.checks.keys()];
  }

  states(): ComponentState[] {
    return [...this.current.values()];
  }

  state(id: string): ComponentState {
    const state = this.current.get(id);
    if (!state) throw new UnknownComponentError(id, this.componentIds);
    return state;
  }

  onChange(listener: StateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells `listener` of every change a component's part signalled, after its re-diagnosis started. */
  onEvent(listener: EventListener): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Re-diagnoses every component every `intervalMs` of the board clock until close. */
  /**
   * Calls `onChange` when one of `ids` fails or turns unknown, or its part signals a change, until the
   * returned function is called: what a gate's `watchDependencies` wants. Degraded still passes a
   * verdict, so a component turning degraded does not count.
   */
  watchDependencies(ids: readonly string[], onChange: (change: DependencyChange) => void): () => void {
    const watched = new Set(ids);
    const stopStates = this.onChange((state) => {
      if (watched.has(state.id) && (state.state === 'failed' || state.state === 'unknown')) {
        onChange({ component: state.id, reason: `${state.state}: ${state.reason}` });
      }
    });
    const stopEvents = this.onEvent((id, event) => {
      if (watched.has(id)) onChange({ component: id, reason: event });
    });
    return () => {
      stopStates();
      stopEvents();
    };
  }

  startRefresh(intervalMs: number): void {
    if (this.closed || this.refreshTimer) return;
    this.refreshTimer = this.board.clock.setInterval(() => void this.diagnose(), intervalMs);
  }

  private signalled(id: string, event: string, fault: string | undefined): void {
    if (this.closed) return;
    this.logger.debug({ component: id, event, fault }, 'component signalled a change');
    // Started (or queued behind a run that may predate the change) before anyone hears of the event,
    // so that a listener that asks for a verdict at once joins a diagnosis that sees the change.
    if (this.running.has(id)) this.stale.add(id);
    else void this.join(id, undefined);
    if (fault === undefined) this.signalledFaults.delete(id);
    else this.failedBySignal(id, `${fault} (${event})`);
    for (const listener of this.eventListeners) listener(id, event);
  }

  /** The part said it failed: so it is, from now, with the readings of its last diagnosis. */
  private failedBySignal(id: string, reason: string): void {
    const previous = this.state(id);
    const state: ComponentState = { ...previous, state: 'failed', reason, code: undefined, since: previous.state === 'failed' ? previous.since : this.board.clock.now() };
    this.signalledFaults.set(id, state);
    this.setState(state, previous.state);
  }

  private setState(state: ComponentState, previous: ComponentStateName): void {
    this.current.set(state.id, state);
    if (state.state !== previous) {
      this.logger.info({ component: state.id, state: state.state, previous, reason: state.reason, code: state.code }, 'component state changed');
      for (const listener of this.listeners) listener(state, previous);
    }
  }

  /**
   * Diagnoses the named components (all when omitted) and resolves with their new states. Never
   * rejects for device faults; rejects with ERR_HAL_CLOSED (`canceled`) when `signal` aborts first.
   */
  diagnose(ids: readonly string[] = this.componentIds, options: { signal?: AbortSignal } = {}): Promise<ComponentState[]> {
    return Promise.all(this.diagnoseEach(ids, options));
  }

  /**
   * As `diagnose`, one promise per id, each settling when that component's diagnosis does. With
   * `recent`, a component whose kind allows it (a serial peer, `stateMaxAgeMs`) answers with the state
   * of its last diagnosis when that passed, finished recently enough and its part has not signalled
   * since.
   */
  diagnoseEach(ids: readonly string[], { signal, recent = false }: { signal?: AbortSignal; recent?: boolean } = {}): Array<Promise<ComponentState>> {
    if (recent) {
      const states = ids.map((id) => this.recentState(id));
      const rest = this.diagnoseEach(
        ids.filter((_, i) => !states[i]),
        signal ? { signal } : {},
      );
      return states.map((state) => (state ? Promise.resolve(state) : rest.shift()!));
    }
    if (!signal) return ids.map((id) => this.join(id, undefined));
    // One listener on the caller's signal, fanned out to one of ours that every component's wait
    // listens to: a dozen components on one caller's signal tripped Node's leak warning (> 10).
    const fanOut = new AbortController();
    setMaxListeners(ids.length + 1, fanOut.signal);
    const relay = (): void => fanOut.abort(signal.reason);
    if (signal.aborted) relay();
    else signal.addEventListener('abort', relay, { once: true });
    const each = ids.map((id) => this.join(id, fanOut.signal));
    void Promise.allSettled(each).then(() => signal.removeEventListener('abort', relay));
    return each;
  }

  /** Of `ids`, the components whose part signalled a fault since their diagnosis began, with that failed state. */
  signalledFailures(ids: readonly string[]): ComponentState[] {
    return ids.flatMap((id) => this.signalledFaults.get(id) ?? []);
  }

  private recentState(id: string): ComponentState | undefined {
    const maxAge = this.maxStateAge.get(id);
    const state = this.current.get(id);
    // Only a passing state stands in for a poll: a part that failed is asked again, so a connect
    // after it recovered is not refused on the strength of the last refresh.
    if (maxAge === undefined || !state || state.diagnosedAt === null || this.stale.has(id)) return undefined;
    if (state.state !== 'ok' && state.state !== 'degraded') return undefined;
    return this.board.clock.now() - state.diagnosedAt <= maxAge ? state : undefined;
  }

  private join(id: string, signal: AbortSignal | undefined): Promise<ComponentState> {
    const check = this.checks.get(id);
    if (!check) return Promise.reject(new UnknownComponentError(id, this.componentIds));
    let run = this.running.get(id);
    // The run that comes after a stale one is started when the stale one settles, before this resumes.
    if (run && this.stale.has(id)) return run.result.then(() => this.join(id, signal));
    if (!run) {
      const abort = this.spareAborts.get(id) ?? new AbortController();
      this.spareAborts.delete(id);
      const started: RunningDiagnosis = { result: this.diagnoseOne(check, abort), abort, waiters: 0, since: this.board.clock.now(), ended: false };
      started.result = started.result.finally(() => {
        started.ended = true;
        this.running.delete(id);
        if (!abort.signal.aborted) this.spareAborts.set(id, abort);
        if (this.stale.delete(id) && !this.closed) void this.join(id, undefined);
      });
      this.running.set(id, started);
      run = started;
    }
    const shared = run;
    shared.waiters++;
    if (!signal) return shared.result;
    const leave = (): void => {
      if (--shared.waiters === 0 && !shared.ended) shared.abort.abort();
    };
    return whileWanted(shared.result, signal, 'diagnosis', id).catch((err: unknown) => {
      if (signal.aborted) leave();
      throw err;
    });
  }

  /**
   * `abort` is the run's own: aborted when every caller left, and here when the diagnosis failed, so
   * that a check still running (a transfer past its deadline) stops.
   */
  private async diagnoseOne(check: ComponentCheck, abort: AbortController): Promise<ComponentState> {
    const clock = this.board.clock;
    const startedAt = clock.now();
    const timeoutMs = check.config.timeoutMs ?? 100;
    let next: Pick<ComponentState, 'state' | 'reason' | 'code' | 'reading' | 'identity'>;
    try {
      const result = await withDeadline(clock, check.run({ signal: abort.signal, timeoutMs }), 'diagnosis', check.id, { timeoutMs, signal: abort.signal });
      next = {
        state: result.health,
        reason: result.reasons.join('; '),
        code: undefined,
        reading: result.reading,
        identity: result.identity ?? this.current.get(check.id)?.identity,
      };
    } catch (err) {
      abort.abort();
      const canceled = err instanceof HalError && err.canceled;
      next = {
        state: canceled || this.closed ? 'unknown' : 'failed',
        reason: err instanceof Error ? err.message : String(err),
        code: err instanceof HandcheckError ? err.code : 'ERR_DIAG_UNEXPECTED',
        reading: undefined,
        identity: undefined,
      };
      if (!(err instanceof HandcheckError)) this.logger.error({ err, component: check.id }, 'component check threw a non-HAL error');
    }
    const previous = this.state(check.id);
    const finishedAt = clock.now();
    const state: ComponentState = {
      ...previous,
      ...next,
      diagnosedAt: finishedAt,
      durationMs: finishedAt - startedAt,
      since: next.state === previous.state ? previous.since : finishedAt,
    };
    // A run the part signalled during may have read it before the change: it answers the callers
    // that asked before the signal, but does not replace the fault the signal asserted.
    const stale = this.stale.has(check.id);
    if (stale && this.signalledFaults.has(check.id)) return state;
    if (!stale) this.signalledFaults.delete(check.id);
    this.setState(state, previous.state);
    return state;
  }

  /** Age in board-clock ms of the oldest diagnosis still running; 0 when none runs. */
  oldestRunningMs(): number {
    let oldest = 0;
    const now = this.board.clock.now();
    for (const { since } of this.running.values()) oldest = Math.max(oldest, now - since);
    return oldest;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.refreshTimer?.cancel();
    for (const stop of this.unwatch.splice(0)) stop();
    for (const check of [...this.checks.values()].reverse()) await check.close();
  }
}
