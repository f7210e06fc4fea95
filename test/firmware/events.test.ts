/**
 * The stale "ok" window, on the sim board's virtual clock: a part that signals a change (an SFP's LOS
 * or TX_FAULT pin, a power-good line, the NIC's carrier) withdraws the reusable verdict the moment it
 * signals, so the next connect is diagnosed - without the clock moving towards `maxAgeMs` or a recheck.
 * And with no connection at all, the background refresh keeps what the firmware shows current.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { BoardConfig } from '../../config/board-config.js';
import type { GateDecision } from '../../firmware/gate/gate.js';
import { Firmware } from '../../firmware/firmware.js';
import { FirmwareMetrics } from '../../firmware/metrics.js';
import { SimBoard } from '../../sim/board.js';
import { VirtualClock } from '../../sim/clock.js';
import type { FaultSpec } from '../../sim/faults.js';
import { Rig } from '../gate/harness.js';
import { until } from '../helpers/wait.js';
import { settle } from '../helpers/settle.js';
import { applianceConfig } from './helpers.js';

const rig = new Rig();
const running: Array<{ firmware: Firmware; board: SimBoard; stateDir: string }> = [];
afterEach(async () => {
  await rig.cleanup();
  for (const { firmware, board, stateDir } of running.splice(0)) {
    await settle(board.clock, firmware.stop({ magic: true }));
    await board.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

/**
 * The firmware on a sim board whose clock moves only when the test says. The service depends on the
 * event-capable parts alone here; of them only the SFP's diagnosis takes board time (its transfers
 * on i2c-2, a few ms at 100 kHz), so the tests move the clock while a verdict is pending - by less than
 * the background refresh (2 s), far short of the recheck (60 s) and the verdict's age limit (30 s).
 */
async function start(patch: (config: BoardConfig) => BoardConfig = (c) => c): Promise<{ firmware: Firmware; board: SimBoard; port: number; metrics: FirmwareMetrics }> {
  const config = patch(
    applianceConfig({ recheckMs: 60_000, maxAgeMs: 30_000 }, (c) => ({
      ...c,
      services: c.services.map((s) => ({ ...s, dependsOn: ['uplink-sfp', 'eth0', 'power-good'] })),
    })),
  );
  const board = new SimBoard(config, { clock: new VirtualClock(1_700_000_000_000) });
  const metrics = new FirmwareMetrics({ board: config.id });
  const stateDir = mkdtempSync(join(tmpdir(), 'handcheck-events-'));
  const firmware = await settle(board.clock, Firmware.start({ board, logger: pino({ level: 'silent' }), metrics, stateDir }));
  running.push({ firmware, board, stateDir });
  return { firmware, board, port: firmware.services[0]!.port, metrics };
}

const edges: Array<[string, FaultSpec, number]> = [
  // SFF-8472 / SFP MSA: RX_LOS and TX_FAULT are open-collector outputs of the module, read here as
  // GPIO inputs with edges (the kernel's sfp.c polls or takes their interrupts the same way).
  ['the SFP asserts RX_LOS', { target: 'uplink-sfp', kind: 'los' }, 0],
  ['the SFP asserts TX_FAULT', { target: 'uplink-sfp', kind: 'tx-fault' }, 0],
  // Carrier loss, as the kernel announces it with RTM_NEWLINK (netif_carrier_off -> linkwatch).
  ['eth0 loses its carrier', { target: 'eth0', kind: 'carrier-down' }, 0],
  // The power-good line has a 5 ms debounce in the board entry: its edge is reported 5 ms later.
  ['power-good drops', { target: 'power-good', kind: 'stuck-low' }, 5],
];

describe('a part that signals a change withdraws the reusable verdict at once', () => {
  for (const [what, fault, debounceMs] of edges) {
    it(`refuses the first connect after ${what}, with a connection held and the clock short of any recheck or age limit`, async () => {
      const { firmware, board, port } = await start((c) => ({
        ...c,
        services: c.services.map((s) => ({ ...s, gate: { ...s.gate, recheckMs: 0 } })),
      }));
      const gate = firmware.services[0]!.gate;
      const held = rig.connect(port);
      await held.connected;
      await settle(board.clock, until(() => gate.stats().held === 1, 'the first connection to be admitted'));
      await rig.connect(port).connected;
      await until(() => gate.stats().reused === 1, 'a second connection to reuse the verdict');
      const before = board.clock.now();

      board.inject(fault);
      await board.clock.advance(debounceMs);

      expect((await settle(board.clock, rig.connect(port).fate)).error).toBe('ECONNRESET');
      expect(board.clock.now() - before).toBeLessThan(1000);
      expect(gate.stats()).toMatchObject({ reset: 1, accepted: 2, reused: 1 });
    });
  }

  for (const [what, fault, debounceMs, signalled] of [
    // The SFP's re-diagnosis reads i2c-2 first, so its state is still the signal's; the others' are
    // read without bus time, and their re-diagnosis has found the same fault.
    ['the SFP asserts RX_LOS', { target: 'uplink-sfp', kind: 'los' }, 0, 'receiver loss of signal (RX_LOS) (line sfp-los changed to 1)'],
    ['the SFP asserts TX_FAULT', { target: 'uplink-sfp', kind: 'tx-fault' }, 0, 'transmitter fault (TX_FAULT) (line sfp-tx-fault changed to 1)'],
    ['eth0 loses its carrier', { target: 'eth0', kind: 'carrier-down' }, 0, 'no carrier on eth0'],
    ['power-good drops', { target: 'power-good', kind: 'stuck-low' }, 5, 'line power-good reads 0, expected 1'],
  ] as Array<[string, FaultSpec, number, string]>) {
    it(`refuses from the fault the edge itself asserts when ${what}: no part is read, the board clock does not move`, async () => {
      const { firmware, board, port } = await start();
      const gate = firmware.services[0]!.gate;
      const decisions: GateDecision[] = [];
      gate.on('decision', (decision) => decisions.push(decision));
      const held = rig.connect(port);
      await settle(board.clock, until(() => gate.stats().held === 1, 'the first connection to be admitted'));

      board.inject(fault);
      await board.clock.advance(debounceMs);
      const at = board.clock.now();
      expect(firmware.devices.state(fault.target)).toMatchObject({ state: 'failed', reason: expect.stringContaining(signalled) });

      // Neither the SFP's reads on i2c-2 nor any other part's take board time here: the clock stands.
      const [first, heldFate] = await Promise.all([rig.connect(port).fate, held.fate]);
      expect([first.error, heldFate.error]).toEqual(['ECONNRESET', 'ECONNRESET']);
      expect(board.clock.now()).toBe(at);
      expect(decisions.find((d) => d.action === 'reset')?.verdict?.failures).toEqual([{ component: fault.target, code: 'ERR_COMPONENT_FAILED', reason: expect.stringContaining(signalled) }]);
    });
  }

  it('takes no health from an edge: once the part signals its recovery, a connect waits for a diagnosis that passes it', async () => {
    const { firmware, board, port } = await start();
    const gate = firmware.services[0]!.gate;
    await settle(board.clock, until(() => firmware.devices.state('uplink-sfp').state === 'ok', 'the first diagnosis'));
    const fault = board.inject({ target: 'uplink-sfp', kind: 'los' });
    board.faults.clear(fault.id);
    const client = rig.connect(port);
    await client.connected;
    expect(gate.stats().waiting).toBe(1);
    await settle(board.clock, until(() => gate.stats().held === 1, 'the connection to be admitted'));
    expect(firmware.devices.state('uplink-sfp').state).toBe('ok');
  });

  it('refuses a connect that came after the edge though it waited for a diagnosis that began before it and passed', async () => {
    // The meter polled by every diagnosis (stateMaxAgeMs 0) keeps it running for its ~25 ms RS-485
    // round trip, long after the SFP's part of it read the module healthy.
    const { firmware, board, port } = await start((c) => ({
      ...c,
      components: c.components.map((k) => (k.id === 'meter' ? { ...k, stateMaxAgeMs: 0 } : k)),
      services: c.services.map((s) => ({ ...s, dependsOn: ['uplink-sfp', 'meter'], gate: { ...s.gate, recheckMs: 0 } })),
    }));
    const gate = firmware.services[0]!.gate;
    await board.clock.advance(3000);
    const before = rig.connect(port);
    await before.connected;
    await until(() => gate.stats().waiting === 1, 'the first connect to wait for its diagnosis');
    await board.clock.advance(10);
    expect(firmware.devices.state('uplink-sfp').state).toBe('ok');

    board.inject({ target: 'uplink-sfp', kind: 'los' });
    const after = rig.connect(port);
    await after.connected;
    await until(() => gate.stats().waiting === 2, 'the second connect to wait for the same diagnosis');

    const fates = await settle(board.clock, Promise.all([before.fate, after.fate]));
    expect(fates.map((f) => f.error)).toEqual(['ECONNRESET', 'ECONNRESET']);
    expect(gate.stats()).toMatchObject({ accepted: 0, reset: 2 });
  });

  it('with recheckMs, cuts the held connections at the edge, not at the next recheck', async () => {
    const { firmware, board, port } = await start();
    const gate = firmware.services[0]!.gate;
    const monitors = [rig.connect(port), rig.connect(port)];
    await settle(board.clock, until(() => gate.stats().held === 2, 'both connections to be admitted'));
    const before = board.clock.now();

    board.inject({ target: 'uplink-sfp', kind: 'los' });
    const fates = await settle(board.clock, Promise.all(monitors.map((m) => m.fate)));

    expect(fates.map((f) => f.error)).toEqual(['ECONNRESET', 'ECONNRESET']);
    expect(board.clock.now() - before).toBeLessThan(1000);
    expect(gate.stats().recheckReset).toBe(2);
  });

  it('accepts again once the part signals its recovery', async () => {
    const { firmware, board, port } = await start();
    const gate = firmware.services[0]!.gate;
    const fault = board.inject({ target: 'uplink-sfp', kind: 'los' });
    expect((await settle(board.clock, rig.connect(port).fate)).error).toBe('ECONNRESET');
    board.faults.clear(fault.id);
    const client = rig.connect(port);
    await client.connected;
    await settle(board.clock, until(() => gate.stats().held === 1, 'the connection to be admitted'));
    expect(firmware.devices.state('uplink-sfp').state).toBe('ok');
  });
});

describe("the gate runs on the board's clock", () => {
  it('a held verdict stops being reused once it is maxAgeMs old on the board clock, with no wall-clock time passing', async () => {
    const { firmware, board, port } = await start((c) => ({ ...c, refreshMs: undefined }));
    const gate = firmware.services[0]!.gate;
    await rig.connect(port).connected;
    await settle(board.clock, until(() => gate.stats().held === 1, 'the first connection to be admitted'));
    await rig.connect(port).connected;
    await until(() => gate.stats().reused === 1, 'a second connection to reuse the verdict');
    const diagnosed = gate.stats().diagnosed;
    await board.clock.advance(30_001);
    await rig.connect(port).connected;
    await settle(board.clock, until(() => gate.stats().accepted === 3, 'a third connection to be admitted'));
    expect(gate.stats()).toMatchObject({ reused: 1, diagnosed: diagnosed + 1 });
  });

  it('rechecks every recheckMs of the board clock while a connection is held', async () => {
    const { firmware, board, port } = await start((c) => ({
      ...c,
      refreshMs: undefined,
      services: c.services.map((s) => ({ ...s, gate: { ...s.gate, recheckMs: 1000 } })),
    }));
    const gate = firmware.services[0]!.gate;
    await rig.connect(port).connected;
    await settle(board.clock, until(() => gate.stats().held === 1, 'the connection to be admitted'));
    const diagnosed = gate.stats().diagnosed;
    await board.clock.advance(5000);
    expect(gate.stats().diagnosed).toBe(diagnosed + 5);
  });
});

describe('the background refresh keeps the device states current without connections', () => {
  it('shows a fault and its clearing in /status, /metrics and the status LED within refreshMs, with no client ever connecting', async () => {
    const { firmware, board, metrics } = await start((c) => ({ ...c, refreshMs: 2000 }));
    const state = (): string | undefined => firmware.status().components.find((c) => c.id === 'board-temp')?.state;
    const metric = async (): Promise<string | undefined> =>
      /handcheck_component_state\{[^}]*component="board-temp"[^}]*\} (\d)/.exec((await metrics.render()).body)?.[1];
    expect(state()).toBe('ok');

    // board-temp announces nothing (an I2C sensor): only a diagnosis finds its NACK.
    const fault = board.inject({ target: 'board-temp', kind: 'nack' });
    await board.clock.advance(1999);
    expect(state()).toBe('ok');
    // The refresh at 2000 ms, then the NACKed address byte's time on i2c-1.
    await board.clock.advance(2);
    expect(state()).toBe('failed');
    expect(await metric()).toBe('3');
    // Blink code 1 (sensor): the LED goes dark for the pause of the pattern within one cycle.
    const levels: number[] = [];
    for (let i = 0; i < 6; i++) {
      await board.clock.advance(250);
      levels.push(board.gpio.level('status-led'));
    }
    expect(levels).toContain(0);

    board.faults.clear(fault.id);
    await board.clock.advance(2000);
    expect(state()).toBe('ok');
    expect(await metric()).toBe('1');
    expect(firmware.services[0]!.gate.stats().connections).toBe(0);
  });

  it('is on by default for every loaded board entry: the schema gives refreshMs 2000', () => {
    expect(applianceConfig().refreshMs).toBe(2000);
  });
});
