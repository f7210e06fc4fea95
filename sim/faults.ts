/**
 * One fault API for the whole sim board, in the spirit of undici's MockAgent: a fault names a target
 * (a component id, a bus id, a GPIO line name, `watchdog`) and a kind, and may start later (`atMs`),
 * last a while (`durationMs`), affect a number of operations (`times`), or stay until cleared.
 *
 * Simulated parts ask the registry at the moment of each operation (`active` to look, `hit` to look
 * and use up one of `times`), so a fault acts exactly where the real hardware would fail.
 */
import type { Clock, Timer } from '../hal/clock.js';
import { HandcheckError } from '../config/errors.js';

export type FaultKind =
  | 'nack'
  | 'bus-timeout'
  | 'stuck-bus'
  | 'wrong-identity'
  | 'out-of-range'
  | 'drift'
  | 'stuck-high'
  | 'stuck-low'
  | 'silent'
  | 'garbage'
  | 'unplugged'
  | 'collision'
  | 'carrier-down'
  | 'crc-errors'
  | 'los'
  | 'tx-fault'
  | 'ddm-alarm'
  | 'starve'
  | 'under-voltage'
  | 'throttled'
  | 'read-only'
  | 'disk-full'
  | 'worn'
  | 'unsynchronized';

export const faultKinds: readonly FaultKind[] = [
  'nack',
  'bus-timeout',
  'stuck-bus',
  'wrong-identity',
  'out-of-range',
  'drift',
  'stuck-high',
  'stuck-low',
  'silent',
  'garbage',
  'unplugged',
  'collision',
  'carrier-down',
  'crc-errors',
  'los',
  'tx-fault',
  'ddm-alarm',
  'starve',
  'under-voltage',
  'throttled',
  'read-only',
  'disk-full',
  'worn',
  'unsynchronized',
];

export type FaultParams = Record<string, number | string | boolean>;

export interface FaultSpec {
  target: string;
  kind: FaultKind;
  /** Start after this many ms of board time; default now. */
  atMs?: number;
  /** Clear itself after this many ms once started; default never. */
  durationMs?: number;
  /** Affect this many operations, then clear; default unlimited. */
  times?: number;
  /** Kind-specific: `quantity` and `value` for out-of-range, `ratePerS` for drift and crc-errors, ... */
  params?: FaultParams;
}

const specFields = new Set(['target', 'kind', 'atMs', 'durationMs', 'times', 'params']);

function isFaultKind(value: unknown): value is FaultKind {
  return typeof value === 'string' && (faultKinds as readonly string[]).includes(value);
}

/**
 * A fault spec from outside (the control endpoint's JSON, a command line): its shape checked, each
 * problem named, before the registry checks the target and the numbers.
 */
export function parseFaultSpec(value: unknown): FaultSpec {
  const bad = (message: string): never => {
    throw new FaultError('ERR_SIM_FAULT_SPEC', message);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('a fault must be a JSON object { "target", "kind", ... }');
  const spec = value as Record<string, unknown>;
  const unknown = Object.keys(spec).filter((key) => !specFields.has(key));
  if (unknown.length > 0) bad(`unknown fault field(s): ${unknown.join(', ')} (allowed: ${[...specFields].join(', ')})`);
  const { target, kind, atMs, durationMs, times, params } = spec;
  if (typeof target !== 'string' || target === '') return bad('fault "target" must be a component, bus or GPIO line name');
  if (!isFaultKind(kind)) return bad(`fault "kind" must be one of ${faultKinds.join(', ')}, got ${JSON.stringify(kind)}`);
  for (const [key, number] of Object.entries({ atMs, durationMs, times })) {
    if (number !== undefined && typeof number !== 'number') bad(`fault "${key}" must be a number, got ${JSON.stringify(number)}`);
  }
  const parsed: FaultSpec = { target, kind };
  if (atMs !== undefined) parsed.atMs = atMs as number;
  if (durationMs !== undefined) parsed.durationMs = durationMs as number;
  if (times !== undefined) parsed.times = times as number;
  if (params !== undefined) {
    if (typeof params !== 'object' || params === null || Array.isArray(params)) return bad('fault "params" must be an object of numbers, strings and booleans');
    for (const [key, param] of Object.entries(params)) {
      if (!['number', 'string', 'boolean'].includes(typeof param)) bad(`fault param "${key}" must be a number, string or boolean, got ${JSON.stringify(param)}`);
    }
    parsed.params = { ...(params as FaultParams) };
  }
  return parsed;
}

export interface ActiveFault {
  readonly id: string;
  readonly target: string;
  readonly kind: FaultKind;
  readonly params: Readonly<FaultParams>;
  /** Board time the fault took effect, or undefined while it waits for `atMs`. */
  startedAt: number | undefined;
  remaining: number | undefined;
  /** Operations the fault has acted on so far: a test can tell a fault that took effect from one nothing touched. */
  hits: number;
  readonly spec: Readonly<FaultSpec>;
}

/** A parameter a fault kind takes, with the range the model can represent. */
export type FaultParamRule =
  | { type: 'number'; min: number; max: number; why: string }
  | { type: 'string'; values?: readonly string[] };

export interface FaultKindInfo {
  kind: FaultKind;
  description: string;
  /** The params this kind takes; any other param is refused. None: the kind takes no params. */
  params?: Readonly<Record<string, FaultParamRule>>;
}

/**
 * Longest `atMs` and `durationMs`: a Node timer cannot wait longer (2^31-1 ms, about 24.8 days), and
 * the realtime clock arms one for the next virtual timer.
 */
export const maxFaultMs = 2 ** 31 - 1;
/** Most `times`: beyond it, a fault that counts operations is a persistent one. */
export const maxFaultTimes = 1_000_000;
const maxStringParam = 64;

function checkParams(target: string, info: FaultKindInfo, params: Readonly<FaultParams>): void {
  const rules = info.params ?? {};
  for (const [name, value] of Object.entries(params)) {
    const rule = rules[name];
    const where = `fault ${info.kind} on "${target}": param "${name}"`;
    if (!rule) {
      const known = Object.keys(rules);
      throw new FaultError('ERR_SIM_FAULT_SPEC', `${where} is not one it takes (${known.length > 0 ? `it takes: ${known.join(', ')}` : 'it takes none'})`);
    }
    if (rule.type === 'number') {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < rule.min || value > rule.max) {
        throw new FaultError('ERR_SIM_FAULT_SPEC', `${where} must be a number from ${rule.min} to ${rule.max} (${rule.why}), got ${typeof value === 'number' ? String(value) : JSON.stringify(value)}`);
      }
    } else if (typeof value !== 'string' || value.length > maxStringParam || (rule.values && !rule.values.includes(value))) {
      throw new FaultError(
        'ERR_SIM_FAULT_SPEC',
        `${where} must be ${rule.values ? `one of ${rule.values.join(', ')}` : `a string of at most ${maxStringParam} characters`}, got ${JSON.stringify(value)}`,
      );
    }
  }
}

export class FaultError extends HandcheckError {
  constructor(code: 'ERR_SIM_FAULT_TARGET' | 'ERR_SIM_FAULT_KIND' | 'ERR_SIM_FAULT_SPEC' | 'ERR_SIM_FAULT_NOT_FOUND', message: string) {
    super(code, message);
  }
}

export interface FaultEvent {
  type: 'injected' | 'started' | 'cleared';
  fault: ActiveFault;
  at: number;
}

interface Entry {
  fault: ActiveFault;
  timers: Timer[];
}

export class FaultRegistry {
  private readonly targets = new Map<string, Map<FaultKind, FaultKindInfo>>();
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<(event: FaultEvent) => void>();
  private nextId = 1;

  constructor(private readonly clock: Clock) {}

  /** Declares a target and the fault kinds it supports. Called by sim parts when the board is built. */
  register(target: string, kinds: FaultKindInfo[]): void {
    const known = this.targets.get(target) ?? new Map<FaultKind, FaultKindInfo>();
    for (const info of kinds) known.set(info.kind, info);
    this.targets.set(target, known);
  }

  /** Every target with the fault kinds it supports. */
  catalogue(): Record<string, FaultKindInfo[]> {
    return Object.fromEntries([...this.targets].map(([target, kinds]) => [target, [...kinds.values()]]));
  }

  supports(target: string, kind: FaultKind): boolean {
    return this.targets.get(target)?.has(kind) ?? false;
  }

  inject(spec: FaultSpec): ActiveFault {
    const kinds = this.targets.get(spec.target);
    if (!kinds) {
      throw new FaultError('ERR_SIM_FAULT_TARGET', `no fault target "${spec.target}"; known: ${[...this.targets.keys()].join(', ')}`);
    }
    const info = kinds.get(spec.kind);
    if (!info) {
      throw new FaultError(
        'ERR_SIM_FAULT_KIND',
        `target "${spec.target}" does not support fault "${spec.kind}"; it supports: ${[...kinds.keys()].join(', ')}`,
      );
    }
    for (const field of ['atMs', 'durationMs'] as const) {
      const value = spec[field];
      if (value !== undefined && !(typeof value === 'number' && value >= 0 && value <= maxFaultMs)) {
        throw new FaultError('ERR_SIM_FAULT_SPEC', `fault ${field} must be a number from 0 to ${maxFaultMs} ms, got ${String(value)}`);
      }
    }
    if (spec.times !== undefined && !(Number.isInteger(spec.times) && spec.times > 0 && spec.times <= maxFaultTimes)) {
      throw new FaultError('ERR_SIM_FAULT_SPEC', `fault times must be an integer from 1 to ${maxFaultTimes}, got ${String(spec.times)}`);
    }
    checkParams(spec.target, info, spec.params ?? {});
    const fault: ActiveFault = {
      id: `f${this.nextId++}`,
      target: spec.target,
      kind: spec.kind,
      params: Object.freeze({ ...spec.params }),
      startedAt: undefined,
      remaining: spec.times,
      hits: 0,
      spec: Object.freeze({ ...spec }),
    };
    const entry: Entry = { fault, timers: [] };
    this.entries.set(fault.id, entry);
    this.emit('injected', fault);
    const start = (): void => {
      fault.startedAt = this.clock.now();
      this.emit('started', fault);
      // A listener may have used up the last of `times` (an unplugged serial line hits its open
      // port as the fault starts): then the fault is gone and has no duration left to time.
      if (spec.durationMs !== undefined && this.entries.has(fault.id)) entry.timers.push(this.clock.setTimeout(() => this.clear(fault.id), spec.durationMs));
    };
    if (spec.atMs) entry.timers.push(this.clock.setTimeout(start, spec.atMs));
    else start();
    return fault;
  }

  /**
   * The first started fault of `kind` on `target`, without using it up. A model asks when the fault
   * would change what it answers, so a fault found counts as a hit.
   */
  active(target: string, kind: FaultKind): ActiveFault | undefined {
    for (const { fault } of this.entries.values()) {
      if (fault.target === target && fault.kind === kind && fault.startedAt !== undefined) {
        fault.hits += 1;
        return fault;
      }
    }
    return undefined;
  }

  /** Like `active`, and counts one operation against the fault's `times`. */
  hit(target: string, kind: FaultKind): ActiveFault | undefined {
    const fault = this.active(target, kind);
    if (fault?.remaining !== undefined) {
      fault.remaining -= 1;
      if (fault.remaining <= 0) this.clear(fault.id);
    }
    return fault;
  }

  list(): ActiveFault[] {
    return [...this.entries.values()].map((entry) => entry.fault);
  }

  clear(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) throw new FaultError('ERR_SIM_FAULT_NOT_FOUND', `no active fault with id "${id}"`);
    for (const timer of entry.timers) timer.cancel();
    this.entries.delete(id);
    this.emit('cleared', entry.fault);
  }

  clearAll(): void {
    for (const id of [...this.entries.keys()]) this.clear(id);
  }

  on(listener: (event: FaultEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(type: FaultEvent['type'], fault: ActiveFault): void {
    const event: FaultEvent = { type, fault, at: this.clock.now() };
    for (const listener of this.listeners) listener(event);
  }
}
