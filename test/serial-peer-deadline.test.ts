/**
 * A serial peer's probe runs under its component's timeoutMs, so that deadline has to lie past the
 * latency limit: a slave answering between warnMax and max is degraded by judge(), not cut off as
 * failed by the deadline.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseBoards } from '../config/boards.js';

const text = readFileSync(new URL('../boards.json', import.meta.url), 'utf8');

describe('serial peer deadline and latency thresholds', () => {
  it('every shipped serial peer has a deadline past its latency max', () => {
    for (const board of parseBoards(text, 'boards.json').boards) {
      for (const component of board.components) {
        if (component.kind !== 'serial-peer') continue;
        expect(component.timeoutMs).toBeGreaterThan(component.thresholds?.latencyMs?.max ?? 0);
      }
    }
  });

  it('refuses a deadline at or below the latency max, naming the path and the numbers', () => {
    const file = JSON.parse(text) as { boards: Array<{ components: Array<Record<string, unknown>> }> };
    const meter = file.boards[0]!.components.find((c) => c.kind === 'serial-peer')!;
    meter.timeoutMs = 100;
    const index = file.boards[0]!.components.indexOf(meter);
    let error: unknown;
    try {
      parseBoards(JSON.stringify(file), 'inline');
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({
      code: 'ERR_BOARDS_SCHEMA',
      issues: [{ path: `/boards/0/components/${index}/timeoutMs`, message: expect.stringContaining('a 100 ms deadline cuts the probe off before its latencyMs max of 200 ms') }],
    });
  });
});
