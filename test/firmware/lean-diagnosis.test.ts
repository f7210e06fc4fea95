/**
 * A diagnosis on every connect costs bus time, so identity is re-proved with the fewest bytes that
 * still catch a swapped or reset part, and what a part stores (calibration, thresholds) is read once
 * per power cycle or insertion. Each test checks the change is still caught:
 * - BME280 (BST-BME280-DS002 5.3, table 18): ctrl_meas F4h and config F5h reset to 0x00 (sleep mode
 *   after power-on, 3.3.1); a chip found so is proven again (chip id D0h = 0x60, trimming NVM).
 * - INA219 (SBOS448 8.6.3.6): the calibration register is 0000h after power-on or RST; a chip found
 *   so shows its configuration (the identity) again and is reprogrammed.
 * - TMP102 (SBOS397 7.5.3): the configuration register is read on every diagnosis, as the kernel's
 *   tmp102_probe checks it (drivers/hwmon/tmp102.c); there is nothing cheaper that proves the part.
 * - SFP (SFF-8472 8.12/8.13, INF-8074 MOD_DEF0): A0h 0-95 on a MOD_DEF0 edge, CC_BASE (63) and
 *   CC_EXT (95) otherwise; the stored thresholds (A2h 0-39) once per module.
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseBoards, selectBoard } from '../../config/boards.js';
import type { BoardConfig } from '../../config/board-config.js';
import { DeviceStateManager } from '../../firmware/device-state.js';
import { EventLoopMonitor } from '../../firmware/event-loop.js';
import { selfDiagnosis } from '../../firmware/self-diagnosis.js';
import { BME280_REG, BME280_RESET_WORD } from '../../hal/drivers/bme280.js';
import { INA219_CONF, INA219_REG } from '../../hal/drivers/ina219.js';
import { gpioTarget } from '../../hal/gpio.js';
import { SimBoard } from '../../sim/board.js';
import { VirtualClock } from '../../sim/clock.js';
import type { SimI2cBus } from '../../sim/i2c-bus.js';
import { settle } from '../helpers/settle.js';

const boards = parseBoards(readFileSync(new URL('../../boards.json', import.meta.url), 'utf8'), 'boards.json');
const appliance = selectBoard(boards, 'sim-appliance');
const chips = ['board-temp', 'ambient', 'rail-5v', 'uplink-sfp'];

function setup(config: Readonly<BoardConfig> = appliance) {
  const board = new SimBoard(config, { clock: new VirtualClock(1_700_000_000_000) });
  const devices = new DeviceStateManager({ board, logger: pino({ level: 'silent' }), watchdogHealth: () => ({ health: 'ok', reason: '', reading: {} }) });
  const diagnose = (ids: string[] = chips) => settle(board.clock, devices.diagnose(ids), 0.1);
  const bus = (id: string) => board.i2cBuses.find((b) => b.id === id) as SimI2cBus;
  /** Bytes on the wire per address during `work`. */
  const bytes = async (work: () => Promise<unknown>): Promise<Record<string, number>> => {
    for (const b of board.i2cBuses) b.resetTraffic();
    await work();
    const out: Record<string, number> = {};
    for (const b of board.i2cBuses) for (const [address, count] of b.traffic.byAddress) out[`${b.id}@0x${address.toString(16)}`] = count.bytes;
    return out;
  };
  return { board, devices, diagnose, bus, bytes };
}

describe('a diagnosis designed for the bus budget', () => {
  it('reads everything the first time, then the fewest bytes per chip: 10 + 14 + 15 on i2c-1, 8 + 28 on i2c-2', async () => {
    const { diagnose, bytes } = setup();
    const first = await bytes(() => diagnose());
    expect(first['i2c-2@0x50']).toBeGreaterThanOrEqual(114);
    expect(first['i2c-2@0x51']).toBeGreaterThanOrEqual(28 + 49);
    expect(await bytes(() => diagnose())).toEqual({ 'i2c-1@0x48': 10, 'i2c-1@0x76': 14, 'i2c-1@0x40': 15, 'i2c-2@0x50': 8, 'i2c-2@0x51': 28 });
  });

  it('still catches a chip swapped for another part: TMP102, BME280 (a BMP280 in its place) and INA219', async () => {
    const { board, devices, diagnose } = setup();
    await diagnose();
    await diagnose();
    for (const target of ['board-temp', 'ambient', 'rail-5v']) board.inject({ target, kind: 'wrong-identity' });
    await diagnose();
    for (const id of ['board-temp', 'ambient', 'rail-5v']) expect(devices.state(id)).toMatchObject({ state: 'failed', code: 'ERR_HAL_IDENTITY' });
    expect(devices.state('ambient').reason).toContain('BMP280');
  });

  it('a BME280 reset between diagnoses is proven again (chip id, trimming) and configured again, then read lean', async () => {
    const { board, diagnose, bus, bytes, devices } = setup();
    await diagnose(['ambient']);
    await settle(board.clock, bus('i2c-1').writeByte(0x76, BME280_REG.reset, BME280_RESET_WORD), 0.1);
    const again = await bytes(() => diagnose(['ambient']));
    // Burst (14), chip id (4), trimming (29 + 10), three configuration writes (9), burst (14).
    expect(again['i2c-1@0x76']).toBe(14 + 4 + 39 + 9 + 14);
    expect(devices.state('ambient').state).toBe('ok');
    expect(await bytes(() => diagnose(['ambient']))).toEqual({ 'i2c-1@0x76': 14 });
  });

  it('an INA219 reset between diagnoses shows its configuration again and is recalibrated, then read lean', async () => {
    const { board, diagnose, bus, bytes, devices } = setup();
    await diagnose(['rail-5v']);
    const before = devices.state('rail-5v').reading?.currentA as number;
    await settle(board.clock, bus('i2c-1').writeWord(0x40, INA219_REG.config, INA219_CONF.RST, 'be'), 0.1);
    const again = await bytes(() => diagnose(['rail-5v']));
    expect(again['i2c-1@0x40']).toBeGreaterThan(15);
    expect(devices.state('rail-5v')).toMatchObject({ state: 'ok', reading: { currentA: expect.closeTo(before, 3) } });
    expect(await bytes(() => diagnose(['rail-5v']))).toEqual({ 'i2c-1@0x40': 15 });
  });

  it('an SFP pulled and put back between diagnoses is read in full again (MOD_DEF0 edges), its thresholds too', async () => {
    const { board, diagnose, bytes, devices } = setup();
    await diagnose(['uplink-sfp']);
    const fault = board.inject({ target: 'uplink-sfp', kind: 'unplugged' });
    await board.clock.advance(1);
    board.faults.clear(fault.id);
    await board.clock.advance(1);
    const again = await bytes(() => diagnose(['uplink-sfp']));
    // A0h 0-95 in six 16-byte blocks (6 x 19), live values (28), thresholds A2h 0-39 (49).
    expect(again).toEqual({ 'i2c-2@0x50': 114, 'i2c-2@0x51': 28 + 49 });
    expect(devices.state('uplink-sfp').state).toBe('ok');
  });

  it("watches each of the SFP's cage lines once: the check's watcher tells the driver of a MOD_DEF0 edge", async () => {
    const { board, diagnose, bytes } = setup();
    const watchers = new Map<string, number>();
    const open = board.gpio.open.bind(board.gpio);
    board.gpio.open = async (spec) => {
      const line = await open(spec);
      const watch = line.watch.bind(line);
      line.watch = (watcher) => {
        watchers.set(line.target, (watchers.get(line.target) ?? 0) + 1);
        return watch(watcher);
      };
      return line;
    };
    await diagnose(['uplink-sfp']);
    const cage = ['sfp-mod-def0', 'sfp-los', 'sfp-tx-fault'].map((name) => gpioTarget(appliance.gpio![name]!));
    expect(Object.fromEntries(watchers)).toEqual(Object.fromEntries(cage.map((target) => [target, 1])));
    const fault = board.inject({ target: 'uplink-sfp', kind: 'unplugged' });
    await board.clock.advance(1);
    board.faults.clear(fault.id);
    await board.clock.advance(1);
    expect((await bytes(() => diagnose(['uplink-sfp'])))['i2c-2@0x50']).toBe(114);
  });

  it('in a cage without MOD_DEF0 wired, another module is told by its checksum bytes', async () => {
    const unwired = { ...appliance, components: appliance.components.map((c) => (c.kind === 'sfp' ? { ...c, lines: {} } : c)) };
    const { board, diagnose, devices } = setup(unwired);
    await diagnose(['uplink-sfp']);
    await diagnose(['uplink-sfp']);
    board.inject({ target: 'uplink-sfp', kind: 'wrong-identity' });
    await diagnose(['uplink-sfp']);
    expect(devices.state('uplink-sfp')).toMatchObject({ state: 'failed', code: 'ERR_HAL_IDENTITY' });
  });
});

describe('the serial meter in a connect diagnosis', () => {
  function diagnoser() {
    const { board, devices } = setup();
    const service = appliance.services[0]!;
    const diagnose = selfDiagnosis({ service: service.id, dependsOn: service.dependsOn, devices, eventLoop: new EventLoopMonitor(), clock: board.clock, app: () => ({ ok: true }) });
    return { board, devices, run: () => settle(board.clock, diagnose(new AbortController().signal), 0.1) };
  }

  it('takes the meter state of the last poll while it is at most stateMaxAgeMs (2500) old, then polls it again', async () => {
    const { board, devices, run } = diagnoser();
    await settle(board.clock, devices.diagnose());
    board.inject({ target: 'meter', kind: 'silent' });
    await board.clock.advance(2000);
    const started = board.clock.now();
    expect((await run()).ok).toBe(true);
    // No RS-485 round trip (~25 ms at 19200 baud) in it: the I2C reads alone.
    expect(board.clock.now() - started).toBeLessThan(10);
    await board.clock.advance(1000);
    expect((await run()).failures.map((f) => [f.component, f.code])).toEqual([['meter', 'ERR_HAL_TIMEOUT']]);
  });

  it('polls a meter whose last poll failed, so the first connect after it recovers is accepted', async () => {
    const { board, devices, run } = diagnoser();
    const silent = board.inject({ target: 'meter', kind: 'silent' });
    expect((await settle(board.clock, devices.diagnose(['meter'])))[0]?.state).toBe('failed');
    board.faults.clear(silent.id);
    expect((await run()).ok).toBe(true);
  });

  it('polls a meter never polled, and a plain diagnose (refresh, diag) always polls', async () => {
    const { board, devices, run } = diagnoser();
    const silent = board.inject({ target: 'meter', kind: 'silent' });
    expect((await run()).failures.map((f) => f.component)).toEqual(['meter']);
    board.faults.clear(silent.id);
    expect((await settle(board.clock, devices.diagnose(['meter'])))[0]?.state).toBe('ok');
  });
});
