/**
 * The terminal table: down targets first, counts in the header, truncation said, no colour codes
 * when colour is off.
 */
import { describe, expect, it } from 'vitest';
import type { TargetSnapshot } from '../../monitor/monitor.js';
import { renderTable } from '../../monitor/terminal.js';

const target = (name: string, state: Exclude<TargetSnapshot['state'], 'reboot-loop'>, since: number): TargetSnapshot => ({
  name,
  host: '10.0.0.1',
  port: 502,
  mode: 'probe',
  labels: { site: 'osaka' },
  held: false,
  state,
  health: state,
  since,
  reason: state === 'up' ? 'handshake in 0.50 ms' : 'RST 1.20 ms after the handshake',
  last: { result: state === 'unknown' ? 'up' : state, at: since, connectMs: 0.5, errno: undefined, reason: '' },
  pending: undefined,
});

describe('renderTable', () => {
  it('lists down targets first, then by name, with their age and reason', () => {
    const now = 1_000_000;
    const lines = renderTable([target('b-up', 'up', now - 90_000), target('a-up', 'up', now - 5000), target('z-down', 'reset', now - 3_700_000)], { now, maxRows: 10, colour: false, width: 200 });
    expect(lines[0]).toMatch(/^handcheck monitor {2}3 targets {2}2 up {2}1 down {2}0 unknown {2}/);
    expect(lines[1]).toMatch(/^TARGET\s+ADDRESS\s+MODE\s+STATE\s+FOR\s+CONNECT\s+REASON\s+LABELS$/);
    expect(lines.slice(2).map((l) => l.split(/\s+/).slice(0, 5).join(' '))).toEqual(['z-down 10.0.0.1:502 probe reset 1h01m', 'a-up 10.0.0.1:502 probe up 5s', 'b-up 10.0.0.1:502 probe up 1m30s']);
    expect(lines.join('\n')).not.toContain('\x1b[');
  });

  it('says how many targets did not fit', () => {
    const lines = renderTable([target('a', 'up', 0), target('b', 'up', 0), target('c', 'refused', 0)], { now: 0, maxRows: 2, colour: true, width: 200 });
    expect(lines).toHaveLength(5);
    expect(lines[2]).toContain('\x1b[31m');
    expect(lines[4]).toBe('... 1 more, the ones down listed first (all of them: the dashboard or /api/targets)');
  });
});
