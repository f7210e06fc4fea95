/**
 * Thresholds and transitions of one target, and the configuration they come from.
 */
import { describe, expect, it } from 'vitest';
import { parseHostPort as parseAddress } from '../../config/host-port.js';
import { resolveConfig, selectTargets, targetFromArgument } from '../../monitor/config.js';
import { MonitorConfigError } from '../../monitor/errors.js';
import { type Classification, type Observation, TargetTracker } from '../../monitor/state.js';

let clock = 0;
const obs = (result: Classification): Observation => ({ result, at: ++clock, connectMs: 1, errno: undefined, reason: `saw ${result}` });

function run(tracker: TargetTracker, results: Classification[]): string[] {
  return results.flatMap((r) => {
    const t = tracker.observe(obs(r));
    return t ? [`${t.from}->${t.to}`] : [];
  });
}

describe('TargetTracker', () => {
  it('takes the first result at once, whatever the thresholds', () => {
    expect(run(new TargetTracker('a', { rise: 3, fall: 3 }), ['reset'])).toEqual(['unknown->reset']);
    expect(run(new TargetTracker('a', { rise: 3, fall: 3 }), ['up'])).toEqual(['unknown->up']);
  });

  it('goes down only after `fall` consecutive failures, and a success in between starts over', () => {
    const t = new TargetTracker('a', { rise: 1, fall: 3 });
    expect(run(t, ['up', 'reset', 'reset', 'up', 'reset', 'timeout'])).toEqual(['unknown->up']);
    expect(t.snapshot().pending).toEqual({ result: 'timeout', count: 2, needed: 3 });
    expect(run(t, ['refused'])).toEqual(['up->refused']);
    expect(t.snapshot()).toMatchObject({ state: 'refused', reason: 'saw refused', pending: undefined });
  });

  it('comes up only after `rise` consecutive ups', () => {
    const t = new TargetTracker('a', { rise: 2, fall: 1 });
    expect(run(t, ['reset', 'up', 'reset', 'up', 'up'])).toEqual(['unknown->reset', 'reset->up']);
  });

  it('while down, a different kind of failure is a transition at once', () => {
    const t = new TargetTracker('a', { rise: 3, fall: 3 });
    expect(run(t, ['up', 'lost', 'reset', 'reset', 'refused', 'refused', 'timeout'])).toEqual(['unknown->up', 'up->reset', 'reset->refused', 'refused->timeout']);
  });

  it('a reboot loop lies over the connects: their changes are no transitions while it holds, and it ends in the state they show', () => {
    const t = new TargetTracker('a', { rise: 1, fall: 1 });
    expect(run(t, ['up'])).toEqual(['unknown->up']);
    expect(t.enterLoop(++clock, 'reboot loop: 3 reboots')).toMatchObject({ from: 'up', to: 'reboot-loop', reason: 'reboot loop: 3 reboots' });
    expect(t.enterLoop(++clock, 'reboot loop: 4 reboots')).toBeUndefined();
    const entered = t.snapshot().since;
    expect(run(t, ['refused', 'refused', 'up', 'reset'])).toEqual([]);
    expect(t.snapshot()).toMatchObject({ state: 'reboot-loop', health: 'reset', since: entered, reason: 'reboot loop: 4 reboots; now reset: saw reset' });
    expect(t.leaveLoop(++clock, 'no reboot for 1 h')).toMatchObject({ from: 'reboot-loop', to: 'reset', reason: 'no reboot for 1 h; now saw reset' });
    expect(t.leaveLoop(++clock, 'again')).toBeUndefined();
    expect(run(t, ['up'])).toEqual(['reset->up']);
  });

  it('a reboot loop restored from the history takes the connects from the first result, without a transition', () => {
    const t = new TargetTracker('a', { rise: 3, fall: 3 });
    t.restore('reboot-loop', 5, 'reboot loop: 3 reboots within 1 h');
    expect(run(t, ['up'])).toEqual([]);
    expect(t.snapshot()).toMatchObject({ state: 'reboot-loop', health: 'up', since: 5 });
    expect(t.leaveLoop(++clock, 'no reboot for 1 h')?.to).toBe('up');
  });

  it('continues from a restored state: the same result after a restart is no transition', () => {
    const t = new TargetTracker('a', { rise: 1, fall: 1 });
    t.restore('reset', 5, 'RST');
    expect(run(t, ['reset'])).toEqual([]);
    expect(t.snapshot().since).toBe(5);
    expect(run(t, ['up'])).toEqual(['reset->up']);
  });
});

describe('monitor configuration', () => {
  it('fills defaults, merges labels, keeps per-target settings', () => {
    const config = resolveConfig(
      {
        defaults: { mode: 'hold', labels: { site: 'osaka' } },
        targets: [{ address: '10.0.0.1:502' }, { name: 'pump', address: '[2001:db8::1]:1502', mode: 'probe', labels: { rack: '2' }, fall: 3 }],
      },
      'fleet.json',
    );
    const rebootLoop = { count: 3, windowMs: 3_600_000 };
    expect(config.targets).toEqual([
      { mode: 'hold', intervalMs: 1000, graceMs: 300, connectTimeoutMs: 2000, rise: 1, fall: 1, keepAliveMs: 1000, rebootLoop, name: '10.0.0.1:502', host: '10.0.0.1', port: 502, labels: { site: 'osaka' } },
      { mode: 'probe', intervalMs: 1000, graceMs: 300, connectTimeoutMs: 2000, rise: 1, fall: 3, keepAliveMs: 1000, rebootLoop, name: 'pump', host: '2001:db8::1', port: 1502, labels: { site: 'osaka', rack: '2' } },
    ]);
    expect(Object.isFrozen(config.targets[0])).toBe(true);
    expect(selectTargets(config, { rack: '2' }).targets.map((t) => t.name)).toEqual(['pump']);
  });

  it('names every problem by its JSON path', () => {
    let error: MonitorConfigError | undefined;
    try {
      resolveConfig({ targets: [{ address: 'nohost' }, { address: 'a:1', labels: { 'bad-name': 'x' }, rise: 0 }, { address: 'b:2', colour: 'red' }] }, 'fleet.json');
    } catch (err) {
      error = err as MonitorConfigError;
    }
    expect(error?.code).toBe('ERR_MONITOR_CONFIG');
    // The unknown key does not hide the address that does not parse, nor the reserved label.
    expect(error?.issues.map((i) => i.path).sort()).toEqual(['/targets/0/address', '/targets/1/labels/bad-name', '/targets/1/rise', '/targets/2/colour']);
    expect(() => resolveConfig({ targets: [{ address: 'nohost' }] }, 'f')).toThrow(/\/targets\/0\/address: "nohost" is not HOST:PORT/);
    expect(() => resolveConfig({ targets: [{ address: 'a:1' }, { address: 'a:1' }] }, 'f')).toThrow(/\/targets\/1\/name: "a:1" is already the name of \/targets\/0/);
    expect(() => resolveConfig({ targets: [{ address: 'a:1', labels: { target: 'x' } }] }, 'f')).toThrow(/\/targets\/0\/labels\/target: "target" is a label the metrics or Prometheus use/);
    for (const label of ['job', 'instance']) {
      expect(() => resolveConfig({ targets: [{ address: 'a:1', labels: { [label]: 'x' } }] }, 'f')).toThrow(new RegExp(`/targets/0/labels/${label}: "${label}" is a label the metrics or Prometheus use themselves`));
    }
    expect(() => resolveConfig({ defaults: { labels: { __meta_site: 'x' } }, targets: [{ address: 'a:1' }] }, 'f')).toThrow(/\/targets\/0\/labels\/__meta_site: "__meta_site" starts with "__", which Prometheus reserves/);
    expect(() => resolveConfig({ targets: [{ address: 'a:1', graceMs: 500, intervalMs: 500 }] }, 'f')).toThrow(/graceMs: 500 ms must be shorter than intervalMs/);
  });

  it('takes the reboot loop from the defaults and the target, part by part, and names what is wrong with it', () => {
    const config = resolveConfig({ defaults: { rebootLoop: { count: 5 }, modbus: {} }, targets: [{ address: 'a:1' }, { address: 'b:2', rebootLoop: { windowMs: 600_000 } }] }, 'f');
    expect(config.targets.map((t) => t.rebootLoop)).toEqual([
      { count: 5, windowMs: 3_600_000 },
      { count: 5, windowMs: 600_000 },
    ]);
    expect(config.defaults.rebootLoop).toEqual({ count: 5, windowMs: 3_600_000 });
    let error: MonitorConfigError | undefined;
    try {
      resolveConfig(
        {
          targets: [
            { address: 'a:1', modbus: {}, rebootLoop: { count: 1, windowMs: 'an hour' } as never },
            { address: 'b:2', modbus: {}, rebootLoop: { cunt: 3 } as never },
            { address: 'c:3', rebootLoop: { count: 3 } },
            { address: 'd:4', modbus: {}, intervalMs: 5000, rebootLoop: { windowMs: 5000 } },
          ],
        },
        'fleet.json',
      );
    } catch (err) {
      error = err as MonitorConfigError;
    }
    expect(error?.issues.map((i) => `${i.path}: ${i.message}`)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\/targets\/0\/rebootLoop\/count: .*>= 2/),
        expect.stringMatching(/^\/targets\/0\/rebootLoop\/windowMs: .*integer/),
        expect.stringMatching(/^\/targets\/1\/rebootLoop\/cunt: unknown key/),
        '/targets/2/rebootLoop: needs modbus: the monitor learns of reboots from the boot record it reads over Modbus',
        '/targets/3/rebootLoop/windowMs: 5000 ms must be longer than intervalMs (5000 ms): a window shorter than the time between two reads never holds two reboots',
      ]),
    );
    expect(error?.issues).toHaveLength(5);
  });

  it('reads NAME=HOST:PORT and [V6]:PORT from the command line', () => {
    expect(targetFromArgument('pump=10.0.0.1:502')).toEqual({ name: 'pump', address: '10.0.0.1:502' });
    expect(targetFromArgument('10.0.0.1:502')).toEqual({ address: '10.0.0.1:502' });
    expect(parseAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseAddress('host:0')).toBeUndefined();
    expect(parseAddress('host:0', { allowPortZero: true })).toEqual({ host: 'host', port: 0 });
    expect(parseAddress('host:65536')).toBeUndefined();
  });
});
