import { expect } from 'vitest';
import type { ActiveFault, FaultRegistry } from '../../sim/faults.js';

/**
 * Records every fault injected into `faults` from now on. `expectAllHit()` fails naming each one no
 * operation ever met: a test whose outcome came about with its fault untouched proved nothing about it.
 */
export function watchFaults(faults: FaultRegistry): { injected: ActiveFault[]; expectAllHit(): void; stop(): void } {
  const injected: ActiveFault[] = [];
  const stop = faults.on((event) => {
    if (event.type === 'injected') injected.push(event.fault);
  });
  return {
    injected,
    expectAllHit: () => {
      expect(injected.length, 'faults injected').toBeGreaterThan(0);
      expect(injected.filter((f) => f.hits === 0).map((f) => `${f.target}:${f.kind}`), 'faults never hit').toEqual([]);
    },
    stop,
  };
}
