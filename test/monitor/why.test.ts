/**
 * Why, not only that: a target with `modbus` set is asked, on a transition to a fault, what its
 * components say (device identification's extended objects), and the transition, the state, the
 * history and the alert carry it. The sim appliance here serves a second Modbus service with no
 * dependencies, which a hardware fault does not gate; asked on the gated service's own port instead,
 * a faulty appliance resets the question too, and the monitor says so rather than guess.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import { componentReports, describeReports } from '../../monitor/appliance-client.js';
import { applianceConfig, startAppliance } from '../firmware/helpers.js';
import { until } from '../helpers/wait.js';
import type { Transition } from '../../monitor/state.js';
import { Receiver, nextTransition, rebootByWatchdog, reach, startMonitor, tempDir, withQueryPort } from './helpers.js';

describe('why: the appliance asked over Modbus', () => {
  let appliance: Appliance;
  let port: number;
  let queryPort: number;
  const config = applianceConfig({ recheckMs: 100 }, withQueryPort);
  beforeAll(async () => {
    ({ appliance, port } = await startAppliance(config));
    queryPort = appliance.services.find((s) => s.config.id === 'modbus-query')!.port;
  });
  afterAll(async () => {
    await appliance.stop();
  });

  it('the firmware names every component with its state, and why when it is not ok', async () => {
    const ask = (): ReturnType<typeof componentReports> => componentReports({ host: '127.0.0.1', port: queryPort, unitId: 1, timeoutMs: 5000 });
    expect((await ask()).map((r) => r.id)).toEqual(config.components.map((c) => c.id));
    // A loaded machine can miss a first diagnosis's deadlines; the board is healthy once they are met.
    await until(async () => (await ask()).every((r) => r.state === 'ok' && r.reason === ''), 'every component ok, without a reason', 30_000);
    appliance.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
    try {
      await until(async () => (await ask()).some((r) => r.id === 'uplink-sfp' && r.state !== 'ok'), 'the fault in the reports');
      const failed = (await ask()).filter((r) => r.state !== 'ok');
      expect(failed).toEqual([{ id: 'uplink-sfp', state: 'failed', reason: expect.stringMatching(/loss of signal/) as string }]);
    } finally {
      appliance.board.sim!.faults.clearAll();
    }
  });

  for (const mode of ['probe', 'hold'] as const) {
    it(`${mode} mode: the transition, the state, the history and the alert say which part failed and why`, async () => {
      const receiver = await new Receiver().listen();
      const monitor = startMonitor({
        targets: [{ name: 'pump', address: `127.0.0.1:${port}`, mode, intervalMs: 100, graceMs: 60, modbus: { port: queryPort, timeoutMs: 5000 } }],
        alerts: { webhook: { url: receiver.url } },
      });
      try {
        await reach(monitor, 'pump', 'up');
        const alerted = receiver.next((a) => a.status === 'firing');
        appliance.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
        const down = (await reach(monitor, 'pump', mode === 'hold' ? 'lost' : 'reset'))!;
        expect(down.cause).toMatch(/(^| \| )uplink-sfp failed: [^|]*loss of signal/);
        expect(down.reason).toBe(`${down.reason.split('; the appliance says: ')[0]}; the appliance says: ${down.cause}`);
        expect(down.reason).toMatch(/^RST /);
        expect(monitor.target('pump')!.reason).toBe(down.reason);
        expect(monitor.history.forTarget('pump').at(-1)!.reason).toBe(down.reason);
        expect((await alerted).body).toMatchObject({ cause: down.cause, reason: down.reason });
      } finally {
        appliance.board.sim!.faults.clearAll();
        await monitor.close();
        await receiver.close();
      }
    });
  }

  it('asked on the gated port itself, a faulty appliance resets the question: the monitor says it could not ask', async () => {
    const monitor = startMonitor({ targets: [{ name: 'pump', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60, modbus: {} }] });
    try {
      await reach(monitor, 'pump', 'up');
      appliance.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
      const down = (await reach(monitor, 'pump', 'reset'))!;
      expect(down.cause).toMatch(/^could not ask the appliance: 127\.0\.0\.1:\d+: (ECONNRESET|the connection closed before an answer)$/);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await monitor.close();
    }
  });
});

describe('reboots: the boot record read on each up probe or hold connect', () => {
  let appliance: Appliance;
  let port: number;
  let queryPort: number;
  const tmp = tempDir();
  beforeAll(async () => {
    // A one-second watchdog on the board's clock in real time, so a starved watchdog resets the board
    // while the monitor probes it.
    const config = applianceConfig({ recheckMs: 0 }, (c) => withQueryPort({ ...c, watchdog: { ...c.watchdog!, timeoutS: 1, resetLoopCount: 10, resetLoopWindowS: 3600 } }));
    ({ appliance, port } = await startAppliance(config, { stateDir: tmp.dir }));
    queryPort = appliance.services.find((s) => s.config.id === 'modbus-query')!.port;
  });
  afterAll(async () => {
    await appliance.stop();
    tmp.remove();
  });

  for (const mode of ['probe', 'hold'] as const) {
    it(`${mode} mode: a reboot is a transition of its own and an alert of its own`, async () => {
      const receiver = await new Receiver().listen();
      const monitor = startMonitor({
        targets: [{ name: 'pump', address: `127.0.0.1:${port}`, mode, intervalMs: 100, graceMs: 60, modbus: { port: queryPort, timeoutMs: 5000 } }],
        alerts: { webhook: { url: receiver.url } },
      });
      try {
        await reach(monitor, 'pump', 'up', 30_000);
        // The first read sets the baseline: no reboot from it.
        await until(() => monitor.target('pump')!.bootCount !== undefined, 'the first read of the boot record', 30_000);
        const baseline = monitor.target('pump')!.bootCount!;
        const resets = appliance.board.sim!.resets;
        const rebooted = new Promise<Transition>((resolve) => {
          const off = monitor.onTransition((t) => {
            if (!t.reason.startsWith('rebooted')) return;
            off();
            resolve(t);
          });
        });
        const alerted = receiver.next((a) => a.kind === 'reboot', 60_000);
        const starve = appliance.board.sim!.faults.inject({ target: 'watchdog', kind: 'starve' });
        await until(() => appliance.board.sim!.resets > resets, 'the board reset by its watchdog', 30_000);
        appliance.board.sim!.faults.clear(starve.id);
        const reboot = await rebooted;
        expect(reboot.from).toBe(reboot.to);
        expect(monitor.target('pump')!.bootCount).toBeGreaterThan(baseline);
        expect(reboot.reason).toMatch(/^rebooted: boot (\d+) \(was \d+\), last reset cause (watchdog|unknown), up \d+ s, \d+ unclean resets/);
        expect(monitor.history.forTarget('pump').some((t) => t.reason === reboot.reason)).toBe(true);
        const { body } = await alerted;
        // startsAt the boot (read less its uptime), endsAt an hour after it was seen.
        const uptimeS = Number(/, up (\d+) s,/.exec(reboot.reason)![1]);
        expect(body).toMatchObject({
          kind: 'reboot',
          status: 'firing',
          target: 'pump',
          reason: reboot.reason,
          reboots: 1,
          startsAt: new Date(reboot.at - uptimeS * 1000).toISOString(),
          endsAt: new Date(reboot.at + 3_600_000).toISOString(),
        });
        // Each reboot is its own alert; a target that went down with it has its own episode alert too.
        expect(receiver.alerts.filter((a) => a.kind === 'reboot')).toHaveLength(1);
      } finally {
        appliance.board.sim!.faults.clearAll();
        await monitor.close();
        await receiver.close();
      }
    });
  }
});

describe('a reboot loop, as the appliance reports it', () => {
  it('the reset loop fails the watchdog, and its count at the limit it serves (IR 1005, IR 1006) puts the target in reboot-loop', async () => {
    const tmp = tempDir();
    const config = applianceConfig({ recheckMs: 0 }, (c) => withQueryPort({ ...c, watchdog: { ...c.watchdog!, timeoutS: 1, resetLoopCount: 2, resetLoopWindowS: 3600 } }));
    const { appliance, port } = await startAppliance(config, { stateDir: tmp.dir });
    const queryPort = appliance.services.find((s) => s.config.id === 'modbus-query')!.port;
    // The monitor's own count (3 in an hour) is not reached by two reboots: the appliance's finding is what counts.
    const monitor = startMonitor({ targets: [{ name: 'pump', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60, modbus: { port: queryPort, timeoutMs: 5000 } }] });
    try {
      await reach(monitor, 'pump', 'up', 30_000);
      const loop = nextTransition(monitor, 'pump', 'reboot-loop', 120_000);
      for (let reset = 1; reset <= 2; reset++) await rebootByWatchdog(appliance);
      const entered = await loop;
      expect(entered.reason).toMatch(/^reboot loop: the appliance counts 2 unclean resets in its reset-loop window \(its limit 2\)/);
      // Under the loop the connects go on being classified: the gated port resets, the watchdog having failed.
      await until(() => monitor.target('pump')!.health === 'reset', 'the gated port reset under the loop', 30_000);
      expect(monitor.target('pump')).toMatchObject({ state: 'reboot-loop', reason: expect.stringMatching(/^reboot loop: the appliance counts 2 .*; now reset: RST/) as string });
      // What the monitor is told when it asks why: the watchdog failed on the reset loop. Asked here, since
      // whether the monitor asked at the loop's start depends on which read found it (a fault's or an up's).
      const reports = await componentReports({ host: '127.0.0.1', port: queryPort, unitId: 1, timeoutMs: 5000 });
      expect(describeReports(reports)).toMatch(/(^| \| )watchdog failed: [^|]*reset loop/);
    } finally {
      await monitor.close();
      await appliance.stop();
      tmp.remove();
    }
  });
});
