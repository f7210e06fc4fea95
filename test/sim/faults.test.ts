import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../sim/clock.js';
import { type FaultEvent, FaultRegistry } from '../../sim/faults.js';

function setup() {
  const clock = new VirtualClock(0);
  const faults = new FaultRegistry(clock);
  faults.register('temp0', [
    { kind: 'nack', description: 'no ack' },
    { kind: 'drift', description: 'drifts' },
  ]);
  return { clock, faults };
}

describe('FaultRegistry', () => {
  it('rejects unknown targets and kinds, naming what is known', () => {
    const { faults } = setup();
    expect(() => faults.inject({ target: 'temp9', kind: 'nack' })).toThrow(expect.objectContaining({ code: 'ERR_SIM_FAULT_TARGET', message: expect.stringContaining('temp0') }));
    expect(() => faults.inject({ target: 'temp0', kind: 'los' })).toThrow(expect.objectContaining({ code: 'ERR_SIM_FAULT_KIND', message: expect.stringContaining('nack, drift') }));
    expect(() => faults.inject({ target: 'temp0', kind: 'nack', times: 0 })).toThrow(expect.objectContaining({ code: 'ERR_SIM_FAULT_SPEC' }));
    expect(() => faults.inject({ target: 'temp0', kind: 'nack', durationMs: -1 })).toThrow(expect.objectContaining({ code: 'ERR_SIM_FAULT_SPEC' }));
    expect(() => faults.clear('f99')).toThrow(expect.objectContaining({ code: 'ERR_SIM_FAULT_NOT_FOUND' }));
  });

  it('starts at atMs, ends after durationMs, on the board clock', async () => {
    const { clock, faults } = setup();
    const events: Array<[FaultEvent['type'], number]> = [];
    faults.on((e) => events.push([e.type, e.at]));
    faults.inject({ target: 'temp0', kind: 'nack', atMs: 100, durationMs: 50 });
    expect(faults.active('temp0', 'nack')).toBeUndefined();
    await clock.advance(100);
    expect(faults.active('temp0', 'nack')).toBeDefined();
    await clock.advance(49);
    expect(faults.active('temp0', 'nack')).toBeDefined();
    await clock.advance(1);
    expect(faults.active('temp0', 'nack')).toBeUndefined();
    expect(events).toEqual([['injected', 0], ['started', 100], ['cleared', 150]]);
  });

  it('counts operations with times and clears itself after the last', () => {
    const { faults } = setup();
    faults.inject({ target: 'temp0', kind: 'nack', times: 2 });
    expect(faults.hit('temp0', 'nack')).toBeDefined();
    expect(faults.active('temp0', 'nack')).toBeDefined();
    expect(faults.hit('temp0', 'nack')).toBeDefined();
    expect(faults.hit('temp0', 'nack')).toBeUndefined();
    expect(faults.list()).toEqual([]);
  });

  it('persists until cleared and lists the catalogue', () => {
    const { faults } = setup();
    const fault = faults.inject({ target: 'temp0', kind: 'drift', params: { ratePerS: 2 } });
    for (let i = 0; i < 100; i++) expect(faults.hit('temp0', 'drift')?.params.ratePerS).toBe(2);
    expect(faults.catalogue()).toEqual({ temp0: [{ kind: 'nack', description: 'no ack' }, { kind: 'drift', description: 'drifts' }] });
    faults.clearAll();
    expect(faults.active('temp0', 'drift')).toBeUndefined();
    expect(() => faults.clear(fault.id)).toThrow();
  });
});
