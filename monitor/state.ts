/**
 * What the monitor believes about one target, from the stream of classified results and the
 * target's rise and fall thresholds. A transition is a change of the believed state; health
 * (up or not) flips only after `rise` consecutive `up` results or `fall` consecutive failures, while a
 * target already down changes state at once when the kind of failure changes (reset -> refused when
 * the firmware behind a failing diagnosis dies): both are news.
 *
 * A reboot loop (monitor/monitor.ts decides when one holds) lies over that: while it holds, the
 * believed state is `reboot-loop` whatever the connects show, since the refusals and losses of each
 * reboot are the loop's symptom, not news of their own; the connects' own state goes on underneath
 * (its reason is the loop's reason's tail) and is what the target returns to when the loop ends.
 */
import type { ProbeResult } from './probe.js';

/** `lost`: a held connection was reset or closed after it had been judged up, or keepalive gave up. */
export type Classification = ProbeResult | 'lost';
/** What the connects show, before any reboot loop is laid over it. */
export type Health = Classification | 'unknown';
/** `reboot-loop`: the appliance keeps rebooting (its boot count, read over Modbus, or its own reset-loop finding). */
export type TargetState = Health | 'reboot-loop';

export const classifications: readonly Classification[] = ['up', 'refused', 'reset', 'closed', 'timeout', 'unreachable', 'error', 'lost'];
export const targetStates: readonly TargetState[] = ['unknown', ...classifications, 'reboot-loop'];

/** A state in which the connects fail: not up, not yet known, and not a reboot loop (which has an alert of its own). */
export const isFault = (state: TargetState): boolean => state !== 'up' && state !== 'unknown' && state !== 'reboot-loop';

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
  /** What the connects show: the state itself, except under a reboot loop. */
  health: Health;
  /** When the state last changed (or was restored from the history), ms since the epoch. */
  since: number | undefined;
  reason: string;
  last: Observation | undefined;
  /** A health change under way but not yet confirmed by the thresholds. */
  pending: { result: Classification; count: number; needed: number } | undefined;
}

export class TargetTracker {
  private health: Health = 'unknown';
  /** The reboot loop's own reason while one holds. */
  private loop: string | undefined;
  private since: number | undefined;
  private reason = '';
  private last: Observation | undefined;
  private streak = 0;
  private streakResult: Classification | undefined;

  constructor(
    readonly name: string,
    private readonly thresholds: { rise: number; fall: number },
  ) {}

  /**
   * Continues from what the history recorded before a restart, so a restart is no transition; a reboot
   * loop restored leaves the connects' state to the first result.
   */
  restore(state: TargetState, since: number, reason: string): void {
    this.since = since;
    if (state === 'reboot-loop') {
      this.loop = reason;
      return;
    }
    this.health = state;
    this.reason = reason;
  }

  get state(): TargetState {
    return this.loop === undefined ? this.health : 'reboot-loop';
  }

  /** A transition of the believed state; a change of the connects' state under a reboot loop is none. */
  observe(observation: Observation): Transition | undefined {
    this.last = observation;
    const { result } = observation;
    const healthy = this.health === 'up';
    if (this.health === 'unknown' || (!healthy && result !== 'up' && result !== this.health)) return this.change(observation);
    if ((result === 'up') === healthy) {
      this.streak = 0;
      this.streakResult = undefined;
      if (result === this.health) this.reason = observation.reason;
      return undefined;
    }
    this.streak += 1;
    this.streakResult = result;
    return this.streak >= (result === 'up' ? this.thresholds.rise : this.thresholds.fall) ? this.change(observation) : undefined;
  }

  private change(observation: Observation): Transition | undefined {
    const from = this.health;
    this.health = observation.result;
    this.reason = observation.reason;
    this.streak = 0;
    this.streakResult = undefined;
    if (this.loop !== undefined) return undefined;
    this.since = observation.at;
    return { target: this.name, at: observation.at, from, to: observation.result, reason: observation.reason, connectMs: observation.connectMs };
  }

  /** Lays a reboot loop over the connects' state (or gives the one that holds a new reason); a transition when it begins. */
  enterLoop(at: number, reason: string): Transition | undefined {
    const from = this.state;
    this.loop = reason;
    if (from === 'reboot-loop') return undefined;
    this.since = at;
    return { target: this.name, at, from, to: 'reboot-loop', reason, connectMs: undefined };
  }

  /** Ends the reboot loop: the target is in whatever state the connects show now. */
  leaveLoop(at: number, reason: string): Transition | undefined {
    if (this.loop === undefined) return undefined;
    this.loop = undefined;
    this.since = at;
    return { target: this.name, at, from: 'reboot-loop', to: this.health, reason: `${reason}; ${this.health === 'unknown' ? 'no result since' : `now ${this.reason}`}`, connectMs: undefined };
  }

  /** Replaces the reason of the current state (with what the appliance said, once it answered). */
  explain(reason: string): void {
    if (this.loop === undefined) this.reason = reason;
    else this.loop = reason;
  }

  snapshot(): TrackerSnapshot {
    const pending =
      this.streakResult === undefined
        ? undefined
        : { result: this.streakResult, count: this.streak, needed: this.streakResult === 'up' ? this.thresholds.rise : this.thresholds.fall };
    const reason = this.loop === undefined ? this.reason : this.health === 'unknown' ? this.loop : `${this.loop}; now ${this.health}: ${this.reason}`;
    return { state: this.state, health: this.health, since: this.since, reason, last: this.last, pending };
  }
}
