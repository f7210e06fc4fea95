/**
 * The monitor against the firmware on the sim board, over real loopback sockets: every fault kind the
 * Modbus service depends on turns the target `reset` (or `closed` with onFail close) and clearing it
 * brings it back `up`; a killed firmware is `refused`; in hold mode a fault found by the firmware's
 * background recheck reaches the monitor as `lost` at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import type { Monitor } from '../../monitor/monitor.js';
import { startFirmware } from '../helpers/processes.js';
import { applianceConfig, serviceFaultMatrix, startAppliance } from '../firmware/helpers.js';
import { until } from '../helpers/wait.js';
import { nextResults, nextTransition, reach, startMonitor } from './helpers.js';

const { targets, healthyLevel, params, degrading } = serviceFaultMatrix(applianceConfig());

describe('probe mode: every fault kind in after mode -> reset, cleared -> up', () => {
  let appliance: Appliance;
  let monitor: Monitor;
  beforeAll(async () => {
    const started = await startAppliance(applianceConfig({ recheckMs: 0 }));
    appliance = started.appliance;
    // The grace window outlasts the slowest failing diagnosis: a bus-timeout fault makes the firmware
    // wait for its I2C deadline (50 ms on this board) before it resets.
    monitor = startMonitor({ targets: [{ name: 'appliance', address: `127.0.0.1:${started.port}`, intervalMs: 150, graceMs: 120 }] });
    await reach(monitor, 'appliance', 'up');
  });
  afterAll(async () => {
    await monitor.close();
    await appliance.stop();
  });

  it('covers every fault kind the sim offers for the service', () => {
    const catalogue = appliance.board.sim!.faults.catalogue();
    expect(targets.flatMap((t) => catalogue[t] ?? []).length).toBeGreaterThan(30);
  });

  for (const target of targets) {
    it(`${target}: each fault kind`, async () => {
      const sim = appliance.board.sim!;
      for (const { kind } of sim.faults.catalogue()[target]!) {
        const harmless =
          (kind === 'stuck-high' && healthyLevel.get(target) === 1) || (kind === 'stuck-low' && healthyLevel.get(target) === 0) || degrading.has(`${target}:${kind}`);
        await reach(monitor, 'appliance', 'up', 5000);
        if (harmless) {
          sim.faults.inject({ target, kind });
          const results = await nextResults(monitor, 'appliance', 3);
          expect(`${kind}: ${[...new Set(results)].join(',')}`).toBe(`${kind}: up`);
          sim.faults.clearAll();
          continue;
        }
        const down = nextTransition(monitor, 'appliance', undefined, 3000).catch((err: unknown) => err as Error);
        sim.faults.inject({ target, kind, ...(params[kind] ? { params: params[kind] } : {}) });
        const transition = await down;
        // Cleared whatever happened, so that one failing kind does not fail every later one.
        const back = nextTransition(monitor, 'appliance', undefined, 5000).catch((err: unknown) => err as Error);
        sim.faults.clearAll();
        if (transition instanceof Error) throw new Error(`${kind}: ${transition.message}`);
        expect(`${kind}: ${transition.from} -> ${transition.to}`).toBe(`${kind}: up -> reset`);
        // In one process the RST can be read before the connect callback has run.
        expect(transition.reason).toMatch(/^RST ([\d.]+ ms after the handshake|as the handshake completed)$/);
        const up = await back;
        if (up instanceof Error) throw new Error(`cleared ${kind}: ${up.message}`);
        expect(`cleared ${kind}: ${up.to}`).toBe(`cleared ${kind}: up`);
      }
    });
  }
});

describe('probe mode: other gate policies and dead firmware', () => {
  it('onFail close -> closed (FIN after the handshake)', async () => {
    const { appliance, port } = await startAppliance(applianceConfig({ onFail: 'close', recheckMs: 0 }));
    const monitor = startMonitor({ targets: [{ name: 'a', address: `127.0.0.1:${port}`, intervalMs: 50, graceMs: 30 }] });
    try {
      await reach(monitor, 'a', 'up');
      const down = nextTransition(monitor, 'a', undefined);
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      expect(await down).toMatchObject({ from: 'up', to: 'closed', reason: expect.stringMatching(/^FIN [\d.]+ ms after the handshake$/) });
      appliance.board.sim!.faults.clearAll();
      await reach(monitor, 'a', 'up');
    } finally {
      await monitor.close();
      await appliance.stop();
    }
  });

  it('a killed firmware process -> refused; while it is down, each probe stays refused', async () => {
    const firmware = await startFirmware(['--log-level', 'silent']);
    const monitor = startMonitor({ targets: [{ name: 'fw', address: `127.0.0.1:${firmware.port}`, intervalMs: 50, graceMs: 30 }] });
    try {
      await reach(monitor, 'fw', 'up');
      const transitions: string[] = [];
      const off = monitor.onTransition((t) => transitions.push(`${t.from} -> ${t.to}`));
      const refused = nextTransition(monitor, 'fw', 'refused');
      await firmware.stop('SIGKILL');
      expect(await refused).toMatchObject({ to: 'refused', reason: 'RST to the SYN' });
      off();
      // A probe whose handshake completed as the process died sees its connection reset by the kernel:
      // that one result may come first.
      expect(transitions.join(', ')).toMatch(/^(up -> reset, reset|up) -> refused$/);
      expect(await nextResults(monitor, 'fw', 3)).toEqual(['refused', 'refused', 'refused']);
      expect(monitor.target('fw')).toMatchObject({ state: 'refused', last: { result: 'refused', errno: 'ECONNREFUSED' } });
    } finally {
      await monitor.close();
      await firmware.stop('SIGKILL');
    }
  });

  it('rise and fall: a single failed probe does not take a target with fall 3 down', async () => {
    const { appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0 }));
    const monitor = startMonitor({ targets: [{ name: 'a', address: `127.0.0.1:${port}`, intervalMs: 50, graceMs: 20, fall: 3, rise: 2 }] });
    try {
      await reach(monitor, 'a', 'up');
      const results: string[] = [];
      monitor.onResult((_, o) => results.push(o.result));
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack', times: 1 });
      await until(() => results.includes('reset'), 'the probe that meets the one failed read');
      await nextResults(monitor, 'a', 2);
      expect(monitor.target('a')!.state).toBe('up');
      const down = nextTransition(monitor, 'a', undefined);
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      expect((await down).to).toBe('reset');
      const before = results.length;
      const up = nextTransition(monitor, 'a', 'up');
      appliance.board.sim!.faults.clearAll();
      await up;
      // At least two consecutive ups after the last reset.
      expect(results.slice(before).slice(-2)).toEqual(['up', 'up']);
    } finally {
      await monitor.close();
      await appliance.stop();
    }
  });
});

describe('hold mode', () => {
  // How soon is for the bench to measure (bench/monitor.ts: fault -> held connection lost, <= recheckMs + 50 ms).
  it('learns of a fault found by the firmware recheck as a lost held connection, then reconnects', async () => {
    const recheckMs = 100;
    const { appliance, port } = await startAppliance(applianceConfig({ recheckMs }));
    const monitor = startMonitor({ targets: [{ name: 'held', address: `127.0.0.1:${port}`, mode: 'hold', intervalMs: 500, graceMs: 50 }] });
    try {
      const gate = appliance.services[0]!.gate;
      await reach(monitor, 'held', 'up');
      await until(() => monitor.target('held')!.held === true && gate.stats().held === 1, 'the monitor to hold its connection');
      for (let i = 0; i < 3; i++) {
        const lost = nextTransition(monitor, 'held', undefined, 10_000);
        appliance.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
        const transition = await lost;
        expect(transition).toMatchObject({ from: 'up', to: 'lost', reason: expect.stringMatching(/^RST on the held connection after [\d.]+ s held$/) });
        // The reconnect meets the failing diagnosis.
        await reach(monitor, 'held', 'reset', 10_000);
        appliance.board.sim!.faults.clearAll();
        await reach(monitor, 'held', 'up', 10_000);
        await until(() => monitor.target('held')!.held === true && gate.stats().held === 1, 'the monitor to hold its connection again');
      }
    } finally {
      await monitor.close();
      await appliance.stop();
    }
  });

  it('a firmware that stops closes the held connection: lost, then refused', async () => {
    const { appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0 }));
    const monitor = startMonitor({ targets: [{ name: 'held', address: `127.0.0.1:${port}`, mode: 'hold', intervalMs: 200, graceMs: 30 }] });
    try {
      await reach(monitor, 'held', 'up');
      const lost = nextTransition(monitor, 'held', 'lost');
      await appliance.stop();
      expect((await lost).reason).toMatch(/^(FIN|RST) on the held connection/);
      await reach(monitor, 'held', 'refused', 2000);
    } finally {
      await monitor.close();
    }
  });
});
