/**
 * What a chip model gets from the sim board: the virtual clock, the fault registry, its fault target
 * (the component id) and the physical values it starts with.
 */
import type { Clock } from '../../hal/clock.js';
import type { FaultKindInfo, FaultRegistry } from '../faults.js';

export interface ChipContext {
  readonly clock: Clock;
  readonly faults: FaultRegistry;
  /** The component id; faults on this target reach the model. */
  readonly id: string;
  /** Initial physical values by quantity name (`temperatureC`, ...), from the board's `sim.initial`. */
  readonly initial: Readonly<Record<string, number>>;
}

/** Values a fault may force or drift to stay within: far past any sensor's range, still exact in a register. */
const valueLimit = 1_000_000;

export const valueFaultKinds: FaultKindInfo[] = [
  { kind: 'wrong-identity', description: 'a different chip answers at this address' },
  {
    kind: 'out-of-range',
    description: 'params.quantity reads params.value (default: far past the limits)',
    params: { quantity: { type: 'string' }, value: { type: 'number', min: -valueLimit, max: valueLimit, why: 'far past any sensor range' } },
  },
  {
    kind: 'drift',
    description: 'params.quantity drifts by params.ratePerS units per second',
    params: { quantity: { type: 'string' }, ratePerS: { type: 'number', min: -valueLimit, max: valueLimit, why: 'units per second' } },
  },
];

/**
 * A physical quantity of a simulated chip: its set value, bent by the active `out-of-range` and
 * `drift` faults that name it (or name no quantity).
 */
export class Quantity {
  private value: number;

  constructor(
    private readonly ctx: ChipContext,
    readonly name: string,
    fallback: number,
    /** Value an `out-of-range` fault without `params.value` forces. */
    private readonly outOfRange: number,
  ) {
    this.value = ctx.initial[name] ?? fallback;
  }

  set(value: number): void {
    this.value = value;
  }

  get(): number {
    const { faults, id, clock } = this.ctx;
    const forced = faults.active(id, 'out-of-range');
    if (forced && appliesTo(forced.params, this.name)) {
      const value = forced.params.value;
      return typeof value === 'number' ? value : this.outOfRange;
    }
    const drift = faults.active(id, 'drift');
    if (drift && appliesTo(drift.params, this.name) && drift.startedAt !== undefined) {
      const rate = typeof drift.params.ratePerS === 'number' ? drift.params.ratePerS : 1;
      return this.value + (rate * (clock.now() - drift.startedAt)) / 1000;
    }
    return this.value;
  }
}

function appliesTo(params: Readonly<Record<string, unknown>>, quantity: string): boolean {
  return params.quantity === undefined || params.quantity === quantity;
}
