/**
 * The device-state manager on the Pi entries' I2C bus, simulated with their adapters: a hung transfer
 * holds the bus as i2c-bus's uncancellable worker does until the adapter driver gives up
 * (i2c-designware-master.c i2c_dw_xfer: adap->timeout, 1 s; i2c-bcm2835.c: CLKT after 35 ms), and
 * no diagnosis queues transfers behind it.
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseBoards, selectBoard } from '../../config/boards.js';
import { DeviceStateManager } from '../../firmware/device-state.js';
import { SimBoard } from '../../sim/board.js';
import { VirtualClock } from '../../sim/clock.js';
import type { SimI2cBus } from '../../sim/i2c-bus.js';
import { settle } from '../helpers/settle.js';

const boards = parseBoards(readFileSync(new URL('../../boards.json', import.meta.url), 'utf8'), 'boards.json');

async function setup(boardId: string) {
  const board = new SimBoard(selectBoard(boards, boardId), { clock: new VirtualClock(1_700_000_000_000) });
  const devices = new DeviceStateManager({ board, logger: pino({ level: 'silent' }), watchdogHealth: () => ({ health: 'ok', reason: '', reading: {} }) });
  const bus = (await board.i2c('i2c-1')) as SimI2cBus;
  const diagnose = (ids: string[]) => settle(board.clock, devices.diagnose(ids));
  await diagnose(['board-temp', 'ambient', 'rail-5v']);
  return { board, devices, bus, diagnose };
}

describe('a hung I2C transfer on a Pi entry', () => {
  it('rpi5 (DesignWare on RP1): the component whose chip stretches the clock fails at its deadline; the others on the bus fail at once, bus held, nothing queued', async () => {
    const { board, devices, bus, diagnose } = await setup('rpi5');
    expect(bus.adapter).toBe('designware');
    board.inject({ target: 'board-temp', kind: 'bus-timeout', times: 1 });
    const started = board.clock.now();
    const [temp] = await diagnose(['board-temp']);
    expect([temp!.state, temp!.code, board.clock.now() - started]).toEqual(['failed', 'ERR_HAL_TIMEOUT', 100]);

    const before = bus.transfers;
    const others = await diagnose(['ambient', 'rail-5v']);
    expect(others.map((s) => [s.id, s.state, s.code, s.durationMs])).toEqual([
      ['ambient', 'failed', 'ERR_HAL_BUS_HELD', 0],
      ['rail-5v', 'failed', 'ERR_HAL_BUS_HELD', 0],
    ]);
    expect(devices.state('ambient').reason).toContain('still held by');
    expect(bus.transfers).toBe(before);

    // The kernel gives up at the adapter's 1 s; the next diagnosis finds the bus free.
    await board.clock.advance(1000 - (board.clock.now() - started));
    expect(bus.held()).toBeUndefined();
    const again = await diagnose(['board-temp', 'ambient', 'rail-5v']);
    expect(again.map((s) => s.state)).toEqual(['ok', 'ok', 'ok']);
  });

  it('rpi4 (bcm2835): the clock-stretch timeout ends the transfer with EIO after 35 ms, so the bus is never held past the deadline', async () => {
    const { board, bus, diagnose } = await setup('rpi4');
    expect(bus.adapter).toBe('bcm2835');
    board.inject({ target: 'board-temp', kind: 'bus-timeout', times: 1 });
    const started = board.clock.now();
    const [temp] = await diagnose(['board-temp']);
    expect([temp!.state, temp!.code, temp!.reason, board.clock.now() - started]).toEqual(['failed', 'ERR_HAL_IO', expect.stringContaining('EIO from the bcm2835 adapter'), 35]);
    const others = await diagnose(['ambient', 'rail-5v']);
    expect(others.map((s) => s.state)).toEqual(['ok', 'ok']);
  });

  it('rpi4 (bcm2835): SDA held low reads as zeros, which the drivers reject as a wrong identity rather than a healthy reading', async () => {
    const { board, diagnose } = await setup('rpi4');
    board.inject({ target: 'i2c-1', kind: 'stuck-bus' });
    const states = await diagnose(['board-temp', 'ambient', 'rail-5v']);
    expect(states.map((s) => [s.id, s.state, s.code])).toEqual([
      ['board-temp', 'failed', 'ERR_HAL_IDENTITY'],
      ['ambient', 'failed', 'ERR_HAL_IDENTITY'],
      ['rail-5v', 'failed', 'ERR_HAL_IDENTITY'],
    ]);
  });
});
