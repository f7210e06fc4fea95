/**
 * Scenarios: a JSON file of timed steps the sim board plays on its virtual clock, so a bug report can
 * be a file. Steps inject faults (optionally labelled), clear them by label, or set physical values.
 *
 * ```json
 * { "name": "SFP flaps", "steps": [
 *   { "atMs": 1000, "inject": { "target": "sfp0", "kind": "los", "durationMs": 500 } },
 *   { "atMs": 5000, "inject": { "target": "temp0", "kind": "drift", "params": { "ratePerS": 0.5 } }, "label": "warmup" },
 *   { "atMs": 9000, "clear": "warmup" },
 *   { "atMs": 9500, "set": { "temp0": { "temperatureC": 30 } } } ] }
 * ```
 */
import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject } from 'ajv';
import type { Timer } from '../hal/clock.js';
import { HandcheckError } from '../config/errors.js';
import type { SimBoard } from './board.js';
import { type ActiveFault, type FaultSpec, faultKinds } from './faults.js';

export interface ScenarioStep {
  atMs: number;
  label?: string;
  inject?: FaultSpec;
  clear?: string;
  set?: Record<string, Record<string, number>>;
}

export interface Scenario {
  name?: string;
  description?: string;
  steps: ScenarioStep[];
}

export class ScenarioError extends HandcheckError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('ERR_SIM_SCENARIO', message, options);
  }
}

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['steps'],
  properties: {
    name: { type: 'string' },
    description: { type: 'string' },
    steps: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['atMs'],
        minProperties: 2,
        properties: {
          atMs: { type: 'number', minimum: 0 },
          label: { type: 'string', minLength: 1 },
          inject: {
            type: 'object',
            additionalProperties: false,
            required: ['target', 'kind'],
            properties: {
              target: { type: 'string', minLength: 1 },
              kind: { enum: [...faultKinds] },
              atMs: { type: 'number', minimum: 0 },
              durationMs: { type: 'number', minimum: 0 },
              times: { type: 'integer', minimum: 1 },
              params: { type: 'object', additionalProperties: { type: ['number', 'string', 'boolean'] } },
            },
          },
          clear: { type: 'string', minLength: 1 },
          set: { type: 'object', additionalProperties: { type: 'object', additionalProperties: { type: 'number' } } },
        },
      },
    },
  },
} as const;

const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile<Scenario>(schema);

function describe(error: ErrorObject): string {
  const path = error.instancePath || '/';
  if (error.keyword === 'additionalProperties') return `${path}: unknown key "${String(error.params.additionalProperty)}"`;
  if (error.keyword === 'enum') return `${path}: must be one of ${(error.params.allowedValues as unknown[]).join(', ')}`;
  return `${path}: ${error.message ?? error.keyword}`;
}

/** Validates a parsed scenario; throws ScenarioError naming every problem with its JSON path. */
export function parseScenario(value: unknown, source = 'scenario'): Scenario {
  if (!validate(value)) {
    throw new ScenarioError(`${source} is not a valid scenario:\n  ${(validate.errors ?? []).map(describe).join('\n  ')}`);
  }
  const labels = new Set<string>();
  value.steps.forEach((step, i) => {
    const actions = ['inject', 'clear', 'set'].filter((key) => key in step);
    if (actions.length !== 1) throw new ScenarioError(`${source}: /steps/${i} must have exactly one of inject, clear, set`);
    if (step.clear !== undefined && !labels.has(step.clear)) {
      throw new ScenarioError(`${source}: /steps/${i}/clear names label "${step.clear}", which no earlier inject step has`);
    }
    if (step.label !== undefined) {
      if (!step.inject) throw new ScenarioError(`${source}: /steps/${i}/label is only allowed on inject steps`);
      labels.add(step.label);
    }
  });
  return value;
}

export async function loadScenario(path: string): Promise<Scenario> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ScenarioError(`cannot read scenario ${path}: ${(err as Error).message}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ScenarioError(`scenario ${path} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseScenario(value, path);
}

export interface ScenarioPlayback {
  /** Resolves when the last step has run. */
  readonly done: Promise<void>;
  /** Step errors (an unknown target, ...) by step index; playback goes on past them. */
  readonly errors: Array<{ step: number; error: Error }>;
  stop(): void;
}

/** Schedules every step on the board's clock, relative to now. */
export function playScenario(board: SimBoard, scenario: Scenario): ScenarioPlayback {
  const labelled = new Map<string, ActiveFault>();
  const errors: ScenarioPlayback['errors'] = [];
  const timers: Timer[] = [];
  let remaining = scenario.steps.length;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  if (remaining === 0) finish();
  scenario.steps.forEach((step, index) => {
    timers.push(
      board.clock.setTimeout(() => {
        try {
          runStep(board, step, labelled);
        } catch (err) {
          errors.push({ step: index, error: err as Error });
        }
        remaining -= 1;
        if (remaining === 0) finish();
      }, step.atMs),
    );
  });
  return {
    done,
    errors,
    stop: () => {
      for (const timer of timers) timer.cancel();
      finish();
    },
  };
}

function runStep(board: SimBoard, step: ScenarioStep, labelled: Map<string, ActiveFault>): void {
  if (step.inject) {
    const fault = board.faults.inject(step.inject);
    if (step.label) labelled.set(step.label, fault);
  } else if (step.clear !== undefined) {
    const fault = labelled.get(step.clear);
    if (fault && board.faults.list().includes(fault)) board.faults.clear(fault.id);
    labelled.delete(step.clear);
  } else if (step.set) {
    for (const [componentId, values] of Object.entries(step.set)) board.setQuantities(componentId, values);
  }
}
