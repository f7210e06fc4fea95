/**
 * The board's own health on the sim board: each model's faults through the one fault API, and how
 * the firmware judges what it reads, as on a Pi (hal/linux/health.ts reads the same quantities).
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseBoards, selectBoard } from '../../config/boards.js';
import { DeviceStateManager } from '../../firmware/device-state.js';
import { quantityMap } from '../../firmware/modbus-service.js';
import { SimBoard } from '../../sim/board.js';
import { VirtualClock } from '../../sim/clock.js';
import type { FaultSpec } from '../../sim/faults.js';
import { watchFaults } from '../helpers/faults.js';
import { settle } from '../helpers/settle.js';

const boards = parseBoards(readFileSync(new URL('../../boards.json', import.meta.url), 'utf8'), 'boards.json');
const appliance = selectBoard(boards, 'sim-appliance');
const healthIds = ['supply', 'soc-temp', 'root-fs', 'clock', 'memory'];

function setup() {
  const board = new SimBoard(appliance, { clock: new VirtualClock(1_700_000_000_000) });
  const devices = new DeviceStateManager({ board, logger: pino({ level: 'silent' }), watchdogHealth: () => ({ health: 'ok', reason: '', reading: {} }) });
  const diagnose = (ids?: string[]) => settle(board.clock, devices.diagnose(ids));
  return { board, devices, diagnose };
}

describe('the Pi health components on the sim board', () => {
  it('are ok on a healthy board and declare their faults in the one catalogue', async () => {
    const { board, devices, diagnose } = setup();
    await diagnose(healthIds);
    expect(healthIds.map((id) => devices.state(id).state)).toEqual(healthIds.map(() => 'ok'));
    const catalogue = board.faults.catalogue();
    expect(catalogue.supply?.map((f) => f.kind)).toEqual(['under-voltage', 'throttled']);
    expect(catalogue['root-fs']?.map((f) => f.kind)).toEqual(['read-only', 'disk-full', 'worn']);
    expect(catalogue.clock?.map((f) => f.kind)).toEqual(['unsynchronized']);
    expect(catalogue['soc-temp']?.map((f) => f.kind)).toEqual(['out-of-range', 'drift']);
    expect(catalogue.memory?.map((f) => f.kind)).toEqual(['out-of-range', 'drift']);
  });

  const cases: Array<[string, FaultSpec, 'failed' | 'degraded', RegExp]> = [
    // raspberrypi-hwmon.c rpi_read: in0_lcrit_alarm is the firmware's under-voltage bit.
    ['under-voltage now', { target: 'supply', kind: 'under-voltage' }, 'failed', /underVoltage 1 > max 0/],
    // get_throttled bit 2 (Raspberry Pi documentation, vcgencmd get_throttled): throttled now.
    ['throttling now', { target: 'supply', kind: 'throttled' }, 'degraded', /throttled 1 > warnMax 0/],
    // An ext4 error with errors=remount-ro leaves "ro" in /proc/mounts (Documentation/admin-guide/ext4.rst).
    ['a read-only root', { target: 'root-fs', kind: 'read-only' }, 'failed', /readOnly 1 > max 0/],
    ['a full root', { target: 'root-fs', kind: 'disk-full', params: { usedPct: 99 } }, 'failed', /usedPct 99 > max 98/],
    // JEDEC EXT_CSD PRE_EOL_INFO 0x03 urgent, DEVICE_LIFE_TIME_EST 0x0B exceeded.
    ['a worn-out eMMC', { target: 'root-fs', kind: 'worn' }, 'failed', /lifeTimeUsedPct 110 > max 100; preEol 3 > max 2/],
    // A boot without network: the kernel's NTP state as ntp_init/ntp_clear leave it (kernel/time/ntp.c: STA_UNSYNC,
    // maxerror NTP_PHASE_LIMIT), which adjtimex answers with TIME_ERROR; the reason says so after the threshold.
    ['an unsynchronised clock', { target: 'clock', kind: 'unsynchronized' }, 'degraded', /^synchronized 0 < warnMin 1; the kernel's clock is not synchronised: STA_UNSYNC set, maxerror 16 s, at NTP_PHASE_LIMIT \(16 s\)$/],
    // PSI full avg10 (Documentation/accounting/psi.rst): every task stalled on memory 60 % of the time.
    ['memory thrashing', { target: 'memory', kind: 'out-of-range', params: { quantity: 'fullAvg10', value: 60 } }, 'failed', /fullAvg10 60 > max 50/],
  ];

  for (const [name, spec, state, reason] of cases) {
    it(`finds ${spec.target} ${state} on ${name}, and nothing else`, async () => {
      const { board, devices, diagnose } = setup();
      const watch = watchFaults(board.faults);
      board.inject(spec);
      await diagnose();
      expect(devices.state(spec.target)).toMatchObject({ state, reason: expect.stringMatching(reason) });
      expect(devices.states().filter((s) => s.id !== spec.target && s.state !== 'ok').map((s) => s.id)).toEqual([]);
      watch.expectAllHit();
    });
  }

  it('remembers an under-voltage once it is over: degraded, "occurred" (the rpi_volt hwmon clears the sticky bits every 2 s)', async () => {
    const { board, devices, diagnose } = setup();
    board.inject({ target: 'supply', kind: 'under-voltage', durationMs: 1000 });
    await diagnose(['supply']);
    expect(devices.state('supply').state).toBe('failed');
    await settle(board.clock, new Promise<void>((resolve) => board.clock.setTimeout(resolve, 1500)));
    await diagnose(['supply']);
    expect(devices.state('supply')).toMatchObject({ state: 'degraded', reading: { underVoltage: 0, underVoltageOccurred: 1 } });
  });

  it('judges the SoC temperature by the zone trip points as well as the thresholds (sysfs-api.rst: critical, hot/passive)', async () => {
    const { board, devices, diagnose } = setup();
    board.inject({ target: 'soc-temp', kind: 'out-of-range', params: { value: 91 } });
    await diagnose(['soc-temp']);
    expect(devices.state('soc-temp').reason).toMatch(/reached the critical trip point \(90 C\)/);
  });

  it('cuts connections through dependsOn for power, SoC temperature, storage and memory, not for the clock', () => {
    for (const id of ['sim-appliance', 'rpi4', 'rpi5', 'rpi-zero-2w']) {
      const dependsOn = selectBoard(boards, id).services[0]!.dependsOn;
      expect(dependsOn, id).toEqual(expect.arrayContaining(['supply', 'soc-temp', 'root-fs', 'memory']));
      expect(dependsOn, id).not.toContain('clock');
    }
  });

  it('fails an unsynchronised clock where the entry says min 1 instead of warnMin 1, and says nothing while it is synchronised', async () => {
    const strict = {
      ...appliance,
      components: appliance.components.map((c) => (c.id === 'clock' ? { ...c, thresholds: { synchronized: { min: 1 } } } : c)),
    };
    const board = new SimBoard(strict, { clock: new VirtualClock(1_700_000_000_000) });
    const devices = new DeviceStateManager({ board, logger: pino({ level: 'silent' }) });
    await settle(board.clock, devices.diagnose(['clock']));
    expect(devices.state('clock')).toMatchObject({ state: 'ok', reason: '', reading: { synchronized: 1, maxErrorS: 0 } });
    board.inject({ target: 'clock', kind: 'unsynchronized' });
    await settle(board.clock, devices.diagnose(['clock']));
    expect(devices.state('clock')).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^synchronized 0 < min 1; the kernel's clock is not synchronised: STA_UNSYNC set/), reading: { maxErrorS: 16 } });
  });

  it('puts every quantity in the Modbus input registers after the older components', () => {
    const map = quantityMap(appliance).filter((entry) => healthIds.includes(entry.component));
    expect(map[0]).toEqual({ register: 134, component: 'supply', quantity: 'underVoltage' });
    expect(map.map((entry) => `${entry.component}.${entry.quantity}`)).toContain('memory.fullAvg60');
  });
});
