/**
 * Self-diagnosis (patent item 13): for one service, diagnose the application behind its port and the
 * components it depends on, and return a verdict. The gate decides when to ask and what to do with
 * the answer; this module only knows how to tell healthy from not.
 */
import type { Clock } from '../hal/clock.js';
import { HandcheckError } from '../config/errors.js';
import type { ComponentState, DeviceStateManager } from './device-state.js';
import type { EventLoopMonitor } from './event-loop.js';
import { type Diagnose, ERR_DIAG_FAILED, type Failure, type Verdict } from './verdict.js';

/** The application behind a service reports its own health: state loaded, handler responsive. */
export type AppHealthCheck = () => { ok: true } | { ok: false; code: string; reason: string };

export interface SelfDiagnosisOptions {
  service: string;
  dependsOn: readonly string[];
  devices: DeviceStateManager;
  eventLoop: EventLoopMonitor;
  clock: Clock;
  app: AppHealthCheck;
  /**
   * The application-layer check that has to wait for I/O: a proxy's probe of its upstream, a guard's
   * look for the daemon's listening socket. Run alongside the components; a verdict that a component
   * already failed does not wait for it.
   */
  appProbe?: (signal: AbortSignal) => Promise<Failure | undefined>;
  /**
   * Event-loop lag past which the application counts as unresponsive. Default 1000 ms: a busy but
   * working firmware lags tens of ms; a second means clients are already timing out.
   */
  maxEventLoopLagMs?: number;
}

export class UnknownServiceError extends HandcheckError {
  constructor(id: string, known: string[]) {
    super('ERR_UNKNOWN_SERVICE', `no service "${id}"; services: ${known.join(', ')}`);
  }
}

function fails(state: ComponentState): boolean {
  return state.state === 'failed' || state.state === 'unknown';
}

/**
 * The components' states once every diagnosis has finished - or, as soon as one fails, those finished
 * by the end of that turn of the event loop (undefined for the rest, which finish in the background
 * and update their states). A known fault does not wait for a slow part: the serial meter's round
 * trip (tens of ms at 19200 baud) would otherwise delay every refusal.
 */
function firstFailureOrAll(pending: Array<Promise<ComponentState>>): Promise<Array<ComponentState | undefined>> {
  const states = new Array<ComponentState | undefined>(pending.length);
  return new Promise((resolve, reject) => {
    let left = pending.length;
    let failed = false;
    if (left === 0) resolve(states);
    pending.forEach((one, i) =>
      one.then((state) => {
        states[i] = state;
        if (--left === 0) resolve(states);
        else if (fails(state) && !failed) {
          failed = true;
          setImmediate(() => resolve(states));
        }
      }, reject),
    );
  });
}

export function selfDiagnosis(options: SelfDiagnosisOptions): Diagnose {
  const { dependsOn, devices, eventLoop, clock, app, appProbe } = options;
  const maxLag = options.maxEventLoopLagMs ?? 1000;
  return async (signal) => {
    const startedAt = clock.now();
    const began = performance.now();
    const failures: Failure[] = [];
    const health = app();
    if (!health.ok) failures.push({ component: 'app', code: health.code, reason: health.reason });
    const lag = eventLoop.currentLagMs();
    if (lag > maxLag) {
      failures.push({ component: 'app', code: 'ERR_DIAG_EVENT_LOOP_LAG', reason: `event loop lag ${Math.round(lag)} ms > ${maxLag} ms` });
    }
    // A part that signalled its own fault fails the verdict as it stands: nothing needs reading to refuse.
    const signalled = devices.signalledFailures(dependsOn);
    // Caught here: a verdict that does not wait for it must not leave a rejection unhandled.
    const probing =
      signalled.length > 0
        ? undefined
        : appProbe?.(signal).catch((err: unknown): Failure => ({ component: 'app', code: ERR_DIAG_FAILED, reason: err instanceof Error ? err.message : String(err) }));
    const states = signalled.length > 0 ? signalled : await firstFailureOrAll(devices.diagnoseEach(dependsOn, { signal, recent: true }));
    for (const state of states) {
      if (state && fails(state)) {
        const code = state.code ?? (state.state === 'failed' ? 'ERR_COMPONENT_FAILED' : 'ERR_COMPONENT_UNKNOWN');
        failures.push({ component: state.id, code, reason: state.reason });
      }
    }
    if (probing !== undefined && failures.length === 0) {
      const failure = await probing;
      if (failure !== undefined) failures.push(failure);
    }
    return { ok: failures.length === 0, failures, startedAt, durationMs: performance.now() - began, reused: false } satisfies Verdict;
  };
}
