/**
 * The history survives a restart of the monitor, which continues from the recorded state; retention
 * deletes what is older, at open and every hour; `handcheck monitor history NAME` prints it.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import { MonitorHistoryError } from '../../monitor/errors.js';
import { History } from '../../monitor/history.js';
import { handcheck } from '../helpers/processes.js';
import { applianceConfig, startAppliance } from '../firmware/helpers.js';
import { nextResults, nextTransition, reach, startMonitor, tempDir } from './helpers.js';

describe('history', () => {
  const tmp = tempDir();
  let appliance: Appliance;
  let port: number;
  beforeAll(async () => {
    ({ appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0 })));
  });
  afterAll(async () => {
    await appliance.stop();
    tmp.remove();
  });

  it('a restarted monitor keeps the history and continues from the last recorded state', async () => {
    const db = join(tmp.dir, 'monitor.db');
    const document = { db, targets: [{ name: 'pump-1', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60 }] };
    const first = startMonitor(document);
    await reach(first, 'pump-1', 'up');
    const down = nextTransition(first, 'pump-1', 'reset');
    appliance.board.sim!.faults.inject({ target: 'rail-5v', kind: 'nack' });
    const reset = await down;
    await first.close();

    const second = startMonitor(document);
    try {
      // Before its first probe, the new monitor already knows what the old one last saw.
      expect(second.target('pump-1')).toMatchObject({ state: 'reset', since: reset.at, reason: reset.reason });
      const transitions: string[] = [];
      second.onTransition((t) => transitions.push(`${t.from}->${t.to}`));
      expect(await nextResults(second, 'pump-1', 2)).toContain('reset');
      // Seeing the same state again after the restart is no transition.
      expect(transitions).toEqual([]);
      const up = nextTransition(second, 'pump-1', 'up');
      appliance.board.sim!.faults.clearAll();
      await up;
    } finally {
      await second.close();
    }

    const store = History.open(db);
    expect(store.forTarget('pump-1').map((t) => `${t.from}->${t.to}`)).toEqual(['unknown->up', 'up->reset', 'reset->up']);
    store.close();

    const printed = await handcheck('monitor', 'history', 'pump-1', '--db', db);
    expect(printed.code).toBe(0);
    const lines = printed.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+FROM\s+TO\s+CONNECT\s+REASON$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(1, 3).join('->'))).toEqual(['unknown->up', 'up->reset', 'reset->up']);
    expect(lines[2]).toMatch(/RST .*(after the handshake|as the handshake completed)/);

    const json = await handcheck('monitor', 'history', 'pump-1', '--db', db, '--json', '--limit', '1');
    expect(JSON.parse(json.stdout)).toMatchObject({ target: 'pump-1', from: 'reset', to: 'up', at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });

    const none = await handcheck('monitor', 'history', 'no-such-target', '--db', db);
    expect(none).toMatchObject({ code: 1, stdout: '', stderr: expect.stringContaining('no transitions of "no-such-target"') });
  });

  it('deletes transitions older than the retention, at open', () => {
    const db = join(tmp.dir, 'retention.db');
    const day = 86_400_000;
    const now = Date.now();
    const store = History.open(db, { retentionDays: 365 });
    for (const age of [40, 29, 1]) store.record({ target: 't', at: now - age * day, from: 'up', to: 'reset', reason: `${age} days old`, connectMs: 1 });
    store.close();
    const reopened = History.open(db, { retentionDays: 30 });
    expect(reopened.forTarget('t').map((t) => t.reason)).toEqual(['29 days old', '1 days old']);
    expect(reopened.prune()).toBe(0);
    reopened.close();
    const later = History.open(db, { retentionDays: 30, now: () => now + 2 * day });
    expect(later.forTarget('t').map((t) => t.reason)).toEqual(['1 days old']);
    later.close();
  });

  it('deletes transitions older than the retention every hour while open, on the clock it is given', () => {
    const day = 86_400_000;
    let now = Date.now();
    // Only the interval is faked: SQLite and its lock file run as they do.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const store = History.open(join(tmp.dir, 'hourly.db'), { retentionDays: 30, now: () => now });
    try {
      store.record({ target: 't', at: now - 29 * day, from: 'up', to: 'reset', reason: '29 days old', connectMs: 1 });
      store.record({ target: 't', at: now - day, from: 'reset', to: 'up', reason: '1 day old', connectMs: 1 });
      now += 2 * day;
      vi.advanceTimersByTime(3_600_000 - 1);
      expect(store.forTarget('t').map((t) => t.reason)).toEqual(['29 days old', '1 day old']);
      vi.advanceTimersByTime(1);
      expect(store.forTarget('t').map((t) => t.reason)).toEqual(['1 day old']);
    } finally {
      store.close();
      vi.useRealTimers();
    }
  });

  it('names the file it cannot open', () => {
    const file = join(tmp.dir, 'no-such-dir', 'x.db');
    expect(() => History.open(file)).toThrow(MonitorHistoryError);
    expect(() => History.open(file)).toThrow(file);
  });
});
