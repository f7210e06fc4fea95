import { readFileSync } from 'node:fs';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseBoards, selectBoard } from '../../config/boards.js';
import type { WatchdogHealth } from '../../firmware/components.js';
import { DeviceStateManager } from '../../firmware/device-state.js';
import { FirmwareMetrics } from '../../firmware/metrics.js';
import { SimBoard } from '../../sim/board.js';
import { VirtualClock } from '../../sim/clock.js';
import { settle } from '../helpers/settle.js';

const appliance = selectBoard(parseBoards(readFileSync(new URL('../../boards.json', import.meta.url), 'utf8'), 'boards.json'), 'sim-appliance');

async function metricsWith(watchdog: WatchdogHealth): Promise<string> {
  const board = new SimBoard(appliance, { clock: new VirtualClock(1_700_000_000_000) });
  const devices = new DeviceStateManager({ board, logger: pino({ level: 'silent' }), watchdogHealth: () => watchdog });
  await settle(board.clock, devices.diagnose(['watchdog']));
  const metrics = new FirmwareMetrics({ board: appliance.id });
  metrics.watchDevices(devices);
  const { body } = await metrics.render();
  await board.close();
  return body;
}

describe('metrics: the watchdog boot status', () => {
  it("exports whether the last reset was the watchdog's, as the keeper read it from the driver", async () => {
    const reset = await metricsWith({ health: 'ok', reason: '', reading: { timeoutS: 15, lastResetByWatchdog: true } });
    expect(reset).toMatch(/^handcheck_watchdog_last_reset_by_watchdog\{component="watchdog",board="sim-appliance"\} 1$/m);
    const clean = await metricsWith({ health: 'ok', reason: '', reading: { timeoutS: 15, lastResetByWatchdog: false } });
    expect(clean).toMatch(/^handcheck_watchdog_last_reset_by_watchdog\{component="watchdog",board="sim-appliance"\} 0$/m);
  });

  it('leaves the series out where the driver cannot tell', async () => {
    const unknown = await metricsWith({ health: 'ok', reason: '', reading: { timeoutS: 15 } });
    expect(unknown).not.toMatch(/^handcheck_watchdog_last_reset_by_watchdog\{/m);
  });
});
