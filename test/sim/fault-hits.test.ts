import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';

describe('fault hit counts', () => {
  it('counts every operation a fault acted on, per fault, and none before it starts or after it ends', async () => {
    const clock = new VirtualClock(0);
    const faults = new FaultRegistry(clock);
    faults.register('temp0', [{ kind: 'nack', description: 'no ack' }]);
    faults.register('temp1', [{ kind: 'nack', description: 'no ack' }]);
    const later = faults.inject({ target: 'temp0', kind: 'nack', atMs: 100, durationMs: 50 });
    const other = faults.inject({ target: 'temp1', kind: 'nack', times: 3 });
    expect(faults.hit('temp0', 'nack')).toBeUndefined();
    expect(later.hits).toBe(0);
    await clock.advance(100);
    faults.hit('temp0', 'nack');
    faults.active('temp0', 'nack');
    await clock.advance(50);
    faults.hit('temp0', 'nack');
    for (let i = 0; i < 5; i++) faults.hit('temp1', 'nack');
    expect([later.hits, other.hits]).toEqual([2, 3]);
  });
});
