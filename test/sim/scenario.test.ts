import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseBoards, selectBoard } from '../../config/boards.js';
import { Bme280Driver } from '../../hal/drivers/bme280.js';
import { Ina219Driver } from '../../hal/drivers/ina219.js';
import { SfpDriver } from '../../hal/drivers/sfp.js';
import { Tmp102Driver } from '../../hal/drivers/tmp102.js';
import { SimBoard } from '../../sim/board.js';
import { VirtualClock } from '../../sim/clock.js';
import { loadScenario, parseScenario, playScenario } from '../../sim/scenario.js';

const boards = parseBoards(readFileSync(new URL('../../boards.json', import.meta.url), 'utf8'), 'boards.json');
const config = selectBoard(boards, 'sim-appliance');
const hour = 3_600_000;

interface Sample {
  at: number;
  temp: number | string;
  rail: number | string;
  sfpLos: boolean | string;
  wdtTimeLeft: number;
}

async function settle<T>(p: Promise<T>): Promise<T | string> {
  return p.catch((err: { code?: string }) => err.code ?? 'error');
}

describe('a one-hour virtual scenario', () => {
  it('kicks the watchdog every second, polls sensors every 100 ms, and sees three faults come and go', async () => {
    const board = new SimBoard(config, { clock: new VirtualClock(0) });
    const bus1 = await board.i2c('i2c-1');
    const bus2 = await board.i2c('i2c-2');
    const temp = new Tmp102Driver(bus1, 0x48, board.clock);
    const env = new Bme280Driver(bus1, 0x76, board.clock);
    const rail = new Ina219Driver(bus1, 0x40, { shuntOhms: 0.1, maxCurrentA: 3.2 }, board.clock);
    const sfp = new SfpDriver(bus2, {});
    const wdt = await board.watchdog();
    await wdt.open();
    await board.clock.runUntil(env.identify(), { stepMs: 0.1 });

    const scenario = parseScenario({
      name: 'three faults in an hour',
      steps: [
        { atMs: 10 * 60_000, inject: { target: 'board-temp', kind: 'nack', durationMs: 5 * 60_000 } },
        { atMs: 25 * 60_000, inject: { target: 'rail-5v', kind: 'out-of-range', params: { quantity: 'busVoltageV', value: 4.2 } }, label: 'brownout' },
        { atMs: 35 * 60_000, clear: 'brownout' },
        { atMs: 45 * 60_000, inject: { target: 'uplink-sfp', kind: 'los', durationMs: 60_000 } },
      ],
    });
    const playback = playScenario(board, scenario);

    const samples: Sample[] = [];
    const kick = board.clock.setInterval(() => void wdt.kick(), 1000);
    let polls = 0;
    const poll = board.clock.setInterval(() => {
      polls += 1;
      // Polling began after the BME280 identify took its wire time: poll times counted from it.
      const at = polls * 100;
      const sample = Promise.all([
        settle(temp.read().then((r) => r.temperatureC)),
        settle(rail.read().then((r) => r.busVoltageV)),
        settle(sfp.read().then((r) => r.rxLos)),
        settle(env.read()),
      ]).then(async ([t, v, los]) => {
        if (at % 60_000 === 0) samples.push({ at, temp: t, rail: v, sfpLos: los, wdtTimeLeft: await wdt.timeLeft() });
      });
      void sample;
    }, 100);

    await board.clock.runFor(hour);
    kick.cancel();
    poll.cancel();
    await playback.done;

    expect(playback.errors).toEqual([]);
    expect(board.resets).toBe(0);
    expect(polls).toBe(36_000);
    const at = (minute: number): Sample => {
      const sample = samples.find((s) => s.at === minute * 60_000);
      if (!sample) throw new Error(`no sample at minute ${minute}`);
      return sample;
    };
    for (const minute of [1, 9, 16, 24, 36, 44, 47, 59]) {
      expect(at(minute).temp, `temperature at minute ${minute}`).toBeTypeOf('number');
      expect(at(minute).rail as number, `rail at minute ${minute}`).toBeGreaterThan(4.9);
      expect(at(minute).sfpLos, `LOS at minute ${minute}`).toBe(false);
      expect(at(minute).wdtTimeLeft).toBeGreaterThanOrEqual(8);
    }
    for (const minute of [11, 14]) expect(at(minute).temp).toBe('ERR_HAL_NACK');
    for (const minute of [26, 34]) expect(at(minute).rail).toBeCloseTo(4.2, 1);
    expect(at(45).sfpLos).toBe(true);
    expect(board.faults.list()).toEqual([]);
    await board.close();
  });

  it('resets the board when the watchdog starves', async () => {
    const board = new SimBoard(config, { clock: new VirtualClock(0) });
    const wdt = await board.watchdog();
    await wdt.open();
    const kick = board.clock.setInterval(() => void wdt.kick().catch(() => undefined), 1000);
    playScenario(board, parseScenario({ steps: [{ atMs: 30_500, inject: { target: 'watchdog', kind: 'starve' } }] }));
    const resets: number[] = [];
    board.onReset((event) => resets.push(event.at));
    await board.clock.runFor(60_000);
    kick.cancel();
    expect(resets).toEqual([40_000]);
  });

  it('rejects malformed scenarios naming the JSON path', async () => {
    expect(() => parseScenario({ steps: [{ atMs: -1, inject: { target: 'x', kind: 'nack' } }] })).toThrow(/\/steps\/0\/atMs/);
    expect(() => parseScenario({ steps: [{ atMs: 1, inject: { target: 'x', kind: 'melt' } }] })).toThrow(/\/steps\/0\/inject\/kind: must be one of/);
    expect(() => parseScenario({ steps: [{ atMs: 1, clear: 'nothing' }] })).toThrow(/no earlier inject step/);
    expect(() => parseScenario({ steps: [{ atMs: 1 }] })).toThrow(/ERR_SIM_SCENARIO|\/steps\/0/);
    expect(() => parseScenario({ steps: [], extra: 1 })).toThrow(/unknown key "extra"/);
    await expect(loadScenario('/nonexistent/scenario.json')).rejects.toMatchObject({ code: 'ERR_SIM_SCENARIO' });
  });
});
