/**
 * What the monitor believes about one target, from the stream of classified results and the
 * target's rise and fall thresholds. A transition is a change of the believed state; health
 * (up or not) flips only after `rise` consecutive `up` results or `fall` consecutive failures, while a
 * target already down changes state at once when the kind of failure changes (reset -> refused when
 * the firmware behind a failing diagnosis dies): both are news.
 */
import type { ProbeResult } from './probe.js';

/** `lost`: a held connection was reset or closed after it had been judged up, or keepalive gave up. */
export type Classification = ProbeResult | 'lost';
export type TargetState = Classification | 'unknown';

export const classifications: readonly Classification[] = ['up', 'refused', 'reset', 'closed', 'timeout', 'unreachable', 'error', 'lost'];
export const targetStates: readonly TargetState[] = ['unknown', ...classifications];

export interface Observation {
  result: Classification;
  /** Wall-clock time of the result, ms since the epoch. */
  at: number;
  /** Time to the SYN/ACK or to the connect's failure; undefined for `lost`. */
  connectMs: number | undefined;
  errno: string | undefined;
  /** What TCP showed, in words: "RST 0.4 ms after the handshake". */
  reason: string;
}

export interface Transition {
  target: string;
  at: number;
  from: TargetState;
  to: TargetState;
  reason: string;
  connectMs: number | undefined;
  /** What the appliance said was wrong, when the monitor asked it (the target's `modbus`). */
  cause?: string;
}

export interface TrackerSnapshot {
  state: TargetState;
  /** When the state last changed (or was restored from the history), ms since the epoch. */
  since: number | undefined;
  reason: string;
  last: Observation | undefined;
  /** A health change under way but not yet confirmed by the thresholds. */
  pending: { result: Classification; count: number; needed: number } | undefined;
}

export class TargetTracker {
  private state: TargetState = 'unknown';
  private since: number | undefined;
  private reason = '';
  private last: Observation | undefined;
  private streak = 0;
  private streakResult: Classification | undefined;

  constructor(
    readonly name: string,
    private readonly thresholds: { rise: number; fall: number },
  ) {}

  /** Continues from what the history recorded before a restart, so a restart is no transition. */
  restore(state: TargetState, since: number, reason: string): void {
    this.state = state;
    this.since = since;
    this.reason = reason;
  }

  observe(observation: Observation): Transition | undefined {
    this.last = observation;
    const { result } = observation;
    const healthy = this.state === 'up';
    if (this.state === 'unknown' || (!healthy && result !== 'up' && result !== this.state)) return this.change(observation);
    if ((result === 'up') === healthy) {
      this.streak = 0;
      this.streakResult = undefined;
      if (result === this.state) this.reason = observation.reason;
      return undefined;
    }
    this.streak += 1;
    this.streakResult = result;
    return this.streak >= (result === 'up' ? this.thresholds.rise : this.thresholds.fall) ? this.change(observation) : undefined;
  }

  private change(observation: Observation): Transition {
    const transition: Transition = {
      target: this.name,
      at: observation.at,
      from: this.state,
      to: observation.result,
      reason: observation.reason,
      connectMs: observation.connectMs,
    };
    this.state = observation.result;
    this.since = observation.at;
    this.reason = observation.reason;
    this.streak = 0;
    this.streakResult = undefined;
    return transition;
  }

  /** Replaces the reason of the current state (with what the appliance said, once it answered). */
  explain(reason: string): void {
    this.reason = reason;
  }

  snapshot(): TrackerSnapshot {
    const pending =
      this.streakResult === undefined
        ? undefined
        : { result: this.streakResult, count: this.streak, needed: this.streakResult === 'up' ? this.thresholds.rise : this.thresholds.fall };
    return { state: this.state, since: this.since, reason: this.reason, last: this.last, pending };
  }
}
