import { getEventListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseBoards, selectBoard } from '../../config/boards.js';
import type { BoardConfig } from '../../config/board-config.js';
import type { WatchdogHealth } from '../../firmware/components.js';
import { DeviceStateManager } from '../../firmware/device-state.js';
import { EventLoopMonitor } from '../../firmware/event-loop.js';
import { selfDiagnosis } from '../../firmware/self-diagnosis.js';
import { SimBoard } from '../../sim/board.js';
import { VirtualClock } from '../../sim/clock.js';
import type { FaultSpec } from '../../sim/faults.js';
import { settle } from '../helpers/settle.js';

const boards = parseBoards(readFileSync(new URL('../../boards.json', import.meta.url), 'utf8'), 'boards.json');
const appliance = selectBoard(boards, 'sim-appliance');

function setup(config: Readonly<BoardConfig> = appliance, watchdog: WatchdogHealth = { health: 'ok', reason: '', reading: {} }) {
  const board = new SimBoard(config, { clock: new VirtualClock(1_700_000_000_000) });
  const devices = new DeviceStateManager({ board, logger: pino({ level: 'silent' }), watchdogHealth: () => watchdog });
  const diagnose = (ids?: string[]) => settle(board.clock, devices.diagnose(ids));
  return { board, devices, diagnose };
}

describe('DeviceStateManager on the sim appliance', () => {
  it('starts unknown and finds every component of a healthy board ok, with readings in SI units', async () => {
    const { devices, diagnose } = setup();
    expect(devices.states().every((s) => s.state === 'unknown' && s.diagnosedAt === null)).toBe(true);
    const states = await diagnose();
    expect(states.map((s) => [s.id, s.state, s.reason])).toEqual(appliance.components.map((c) => [c.id, 'ok', '']));
    const reading = (id: string) => devices.state(id).reading ?? {};
    expect(reading('board-temp').temperatureC).toBeTypeOf('number');
    expect(reading('rail-5v').busVoltageV).toBeGreaterThan(4.75);
    expect(reading('uplink-sfp').rxLos).toBe(false);
    expect(reading('eth0').carrier).toBe(true);
    expect(reading('meter').responding).toBe(true);
    expect(devices.state('uplink-sfp').identity?.part).toMatch(/^SFP /);
  });

  const cases: Array<[string, FaultSpec, string, RegExp]> = [
    ['NACK', { target: 'board-temp', kind: 'nack' }, 'ERR_HAL_NACK', /no acknowledge/],
    ['hung transfer', { target: 'ambient', kind: 'bus-timeout' }, 'ERR_HAL_TIMEOUT', /timed out/],
    ['stuck bus', { target: 'i2c-1', kind: 'stuck-bus' }, 'ERR_HAL_BUS_BUSY', /stuck/],
    ['wrong identity', { target: 'ambient', kind: 'wrong-identity' }, 'ERR_HAL_IDENTITY', /BMP280|0x58/],
    ['rail out of range', { target: 'rail-5v', kind: 'out-of-range', params: { quantity: 'busVoltageV', value: 4.2 } }, '', /busVoltageV 4\.2\d* < min/],
    // 4 A through 0.1 ohm is 400 mV, past the INA219's 320 mV at PGA /8 (SBOS448 table 7): the shunt register saturates.
    ['shunt saturated', { target: 'rail-5v', kind: 'out-of-range', params: { quantity: 'currentA', value: 4 } }, '', /shunt voltage at the PGA full scale/],
    ['SFP loss of signal', { target: 'uplink-sfp', kind: 'los' }, '', /RX_LOS/],
    ['SFP transmitter fault', { target: 'uplink-sfp', kind: 'tx-fault' }, '', /TX_FAULT/],
    ['SFP past its own alarm', { target: 'uplink-sfp', kind: 'ddm-alarm' }, '', /temperatureC .* \(module thresholds\)/],
    ['no carrier', { target: 'eth0', kind: 'carrier-down' }, '', /no carrier on eth0/],
    ['serial peer silent', { target: 'meter', kind: 'silent' }, 'ERR_HAL_TIMEOUT', /timed out/],
    ['serial peer garbage', { target: 'meter', kind: 'garbage' }, '', /Modbus|CRC|answer|timed out/],
    ['serial adapter unplugged', { target: 'meter', kind: 'unplugged' }, 'ERR_HAL_CLOSED', /went away/],
    ['power-good stuck low', { target: 'power-good', kind: 'stuck-low' }, '', /power-good reads 0, expected 1/],
  ];

  for (const [name, spec, code, reason] of cases) {
    it(`fails ${spec.target === 'i2c-1' ? 'the components of i2c-1' : spec.target} on ${name}`, async () => {
      const { board, devices, diagnose } = setup();
      await diagnose();
      board.inject(spec);
      await diagnose();
      const id = spec.target === 'i2c-1' ? 'board-temp' : spec.target;
      const state = devices.state(id);
      expect(state.state).toBe('failed');
      expect(state.reason).toMatch(reason);
      if (code) expect(state.code).toBe(code);
      // A stuck bus, or a transfer hung on it (it holds the bus past every deadline on it), takes the bus's other chips with it.
      const busWide = spec.target === 'i2c-1' || spec.kind === 'bus-timeout';
      const others = devices.states().filter((s) => s.id !== id && !(busWide && ['board-temp', 'ambient', 'rail-5v'].includes(s.id)));
      expect(others.filter((s) => s.state !== 'ok').map((s) => s.id)).toEqual([]);
    });
  }

  it('degrades past a warning threshold and fails past the limit', async () => {
    const { board, devices, diagnose } = setup();
    const temp = appliance.components.find((c) => c.id === 'board-temp')!;
    const { warnMax, max } = temp.thresholds!.temperatureC!;
    board.setQuantities('board-temp', { temperatureC: (warnMax! + max!) / 2 });
    await diagnose(['board-temp']);
    expect(devices.state('board-temp')).toMatchObject({ state: 'degraded', reason: expect.stringContaining('> warnMax') });
    board.setQuantities('board-temp', { temperatureC: max! + 2 });
    await diagnose(['board-temp']);
    expect(devices.state('board-temp')).toMatchObject({ state: 'failed', reason: expect.stringContaining('> max') });
  });

  it('recovers when the fault clears, reopening a serial adapter that was unplugged', async () => {
    const { board, devices, diagnose } = setup();
    await diagnose(['meter']);
    const fault = board.inject({ target: 'meter', kind: 'unplugged' });
    await diagnose(['meter']);
    expect(devices.state('meter').state).toBe('failed');
    await diagnose(['meter']);
    expect(devices.state('meter').code).toBe('ERR_HAL_NOT_FOUND');
    board.faults.clear(fault.id);
    await diagnose(['meter']);
    expect(devices.state('meter').state).toBe('ok');
  });

  it('shares a running diagnosis of a component between callers and reports state changes once', async () => {
    const { board, devices } = setup();
    const changes: string[] = [];
    devices.onChange((state, previous) => changes.push(`${state.id}:${previous}->${state.state}`));
    const bus = await board.i2c('i2c-1');
    const before = (bus as unknown as { transfers: number }).transfers;
    await settle(board.clock, Promise.all([devices.diagnose(['board-temp']), devices.diagnose(['board-temp'])]));
    const oneRun = (bus as unknown as { transfers: number }).transfers - before;
    await settle(board.clock, devices.diagnose(['board-temp']));
    expect((bus as unknown as { transfers: number }).transfers - before).toBe(2 * oneRun);
    expect(changes).toEqual(['board-temp:unknown->ok']);
  });

  /** board-temp's transfers hang (the bus's own timeout far away); its check gives up after 30 ms. */
  function hungBoardTemp() {
    const config: BoardConfig = {
      ...appliance,
      i2c: appliance.i2c!.map((b) => ({ ...b, timeoutMs: 10_000 })),
      components: appliance.components.map((c) => (c.id === 'board-temp' ? { ...c, timeoutMs: 30 } : c)),
    };
    const rig = setup(config);
    rig.board.inject({ target: 'board-temp', kind: 'bus-timeout' });
    return rig;
  }

  it('fails a hung check at the component deadline on the board clock', async () => {
    const { board, devices } = hungBoardTemp();
    const run = devices.diagnose(['board-temp']);
    await board.clock.advance(29);
    expect(devices.oldestRunningMs()).toBe(29);
    await board.clock.advance(1);
    const [state] = await run;
    expect(state).toMatchObject({ state: 'failed', code: 'ERR_HAL_TIMEOUT', durationMs: 30 });
  });

  it("shares a hung check between callers and cancels it only when every caller's signal aborted", async () => {
    const { board, devices } = hungBoardTemp();
    const first = new AbortController();
    const second = new AbortController();
    const firstRun = devices.diagnose(['board-temp'], { signal: first.signal });
    const secondRun = devices.diagnose(['board-temp'], { signal: second.signal });
    await board.clock.advance(5);
    first.abort();
    await expect(firstRun).rejects.toMatchObject({ code: 'ERR_HAL_CLOSED', canceled: true });
    expect(devices.oldestRunningMs()).toBe(5);

    second.abort();
    await expect(secondRun).rejects.toMatchObject({ canceled: true });
    await board.clock.advance(0);
    expect(devices.oldestRunningMs()).toBe(0);
    // Canceled, not failed: nobody waited long enough to learn whether the part is faulty.
    expect(devices.state('board-temp')).toMatchObject({ state: 'unknown', durationMs: 5 });
  });

  it("puts one listener on the caller's signal however many components it waits for", async () => {
    // Node warns of a leak past 10 listeners on one signal; a service depends on a dozen parts.
    const { board, devices } = setup();
    const caller = new AbortController();
    const run = devices.diagnose(undefined, { signal: caller.signal });
    expect(appliance.components.length).toBeGreaterThan(10);
    expect(getEventListeners(caller.signal, 'abort')).toHaveLength(1);
    await settle(board.clock, run);
    await new Promise(setImmediate);
    expect(getEventListeners(caller.signal, 'abort')).toHaveLength(0);
  });

  it('rejects unknown component ids', async () => {
    const { devices } = setup();
    await expect(devices.diagnose(['nope'])).rejects.toMatchObject({ code: 'ERR_UNKNOWN_COMPONENT' });
    expect(() => devices.state('nope')).toThrow(/board-temp/);
  });
});

describe('selfDiagnosis', () => {
  function diagnoser(app: Parameters<typeof selfDiagnosis>[0]['app'] = () => ({ ok: true }), dependsOn = appliance.services[0]!.dependsOn) {
    const { board, devices } = setup();
    const service = appliance.services[0]!;
    const eventLoop = new EventLoopMonitor();
    const diagnose = selfDiagnosis({ service: service.id, dependsOn, devices, eventLoop, clock: board.clock, app });
    return { board, devices, run: () => settle(board.clock, diagnose(new AbortController().signal)) };
  }

  it('is ok on a healthy board and names every failed dependency otherwise', async () => {
    const { board, run } = diagnoser();
    expect(await run()).toMatchObject({ ok: true, failures: [], reused: false });
    // Both found without a bus transfer (MOD_DEF0 high, the line's level), so both end the same turn;
    // the clock passes power-good's 5 ms debounce first, so that the re-diagnoses its edge and the
    // SFP's started have replaced the faults the edges signalled.
    board.inject({ target: 'uplink-sfp', kind: 'unplugged' });
    board.inject({ target: 'power-good', kind: 'stuck-low' });
    await board.clock.advance(5);
    const verdict = await run();
    expect(verdict.ok).toBe(false);
    expect(verdict.failures.map((f) => [f.component, f.code])).toEqual([
      ['uplink-sfp', 'ERR_HAL_NOT_FOUND'],
      ['power-good', 'ERR_COMPONENT_FAILED'],
    ]);
  });

  it('does not wait for the other bus once a dependency failed: the SFP still being read finishes in the background', async () => {
    const { board, devices, run } = diagnoser();
    await run();
    // The module's own alarm flag signals nothing: only its A2h reads find it.
    board.inject({ target: 'uplink-sfp', kind: 'ddm-alarm' });
    board.inject({ target: 'board-temp', kind: 'nack' });
    // board-temp's NACK ends after one address byte on i2c-1; the SFP's reads on i2c-2 take longer.
    const verdict = await run();
    expect(verdict.failures.map((f) => [f.component, f.code])).toEqual([['board-temp', 'ERR_HAL_NACK']]);
    await settle(board.clock, devices.diagnose(['uplink-sfp']));
    expect(devices.state('uplink-sfp')).toMatchObject({ state: 'failed', reason: expect.stringContaining('module thresholds') });
  });

  it('ignores components the service does not depend on', async () => {
    const { board, run } = diagnoser(undefined, ['board-temp']);
    board.inject({ target: 'meter', kind: 'silent' });
    expect((await run()).ok).toBe(true);
  });

  it('fails the shipped Modbus service when its serial meter goes silent, as the README says', async () => {
    const { board, run } = diagnoser();
    board.inject({ target: 'meter', kind: 'silent' });
    expect((await run()).failures.map((f) => [f.component, f.code])).toEqual([['meter', 'ERR_HAL_TIMEOUT']]);
  });

  it('fails when the application behind the port says it is not ready', async () => {
    const { run } = diagnoser(() => ({ ok: false, code: 'ERR_APP_NOT_READY', reason: 'register map not loaded' }));
    expect((await run()).failures).toEqual([{ component: 'app', code: 'ERR_APP_NOT_READY', reason: 'register map not loaded' }]);
  });
});
