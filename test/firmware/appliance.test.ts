/**
 * The firmware on the sim board over real loopback sockets: every fault the Modbus service depends on
 * resets a connecting client; a healthy board never does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import { applianceConfig, attempt, fate, open, readInputRegisters, serviceFaultMatrix, startAppliance } from './helpers.js';

describe('every fault the service depends on resets a connecting client', () => {
  let appliance: Appliance;
  let port: number;
  beforeAll(async () => {
    ({ appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0 })));
  });
  afterAll(() => appliance.stop());

  const { targets, healthyLevel, params } = serviceFaultMatrix(applianceConfig());

  it('covers every fault kind the sim offers for those targets', () => {
    const catalogue = appliance.board.sim!.faults.catalogue();
    const kinds = targets.flatMap((t) => (catalogue[t] ?? []).map((k) => `${t}:${k.kind}`));
    expect(kinds.length).toBeGreaterThan(30);
    expect(targets.every((t) => catalogue[t])).toBe(true);
  });

  for (const target of targets) {
    it(`${target}: each fault kind -> RST; cleared -> accepted`, async () => {
      const sim = appliance.board.sim!;
      for (const { kind } of sim.faults.catalogue()[target]!) {
        const harmless = (kind === 'stuck-high' && healthyLevel.get(target) === 1) || (kind === 'stuck-low' && healthyLevel.get(target) === 0);
        sim.faults.inject({ target, kind, ...(params[kind] ? { params: params[kind] } : {}) });
        expect(`${kind}: ${await attempt(port, 400)}`).toBe(`${kind}: ${harmless ? 'open' : 'reset'}`);
        sim.faults.clearAll();
        // Once cleared, the next diagnoses see it gone: a sensor in normal mode shows a fresh measurement
        // one standby period later, an error rate once its window no longer holds the burst.
        let after = await attempt(port, 150);
        for (let tries = 0; after !== 'open' && tries < 5; tries++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          after = await attempt(port, 150);
        }
        expect(`after ${kind}: ${after}`).toBe(`after ${kind}: open`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });
  }
});

describe('gate policies through the running firmware', () => {
  it('onFail close answers a failed diagnosis with FIN instead of RST', async () => {
    const { appliance, port } = await startAppliance(applianceConfig({ onFail: 'close' }));
    try {
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      expect(await attempt(port, 400)).toBe('closed');
    } finally {
      await appliance.stop();
    }
  });

  it('claim 5: a second client reuses the verdict of the held first connection', async () => {
    const { appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0 }));
    try {
      const gate = appliance.services[0]!.gate;
      const first = await open(port);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const diagnosed = gate.stats().diagnosed;
      const second = await open(port);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(gate.stats()).toMatchObject({ diagnosed, reused: 1, held: 2 });
      // While the first connection is held, even a fault goes unseen by new connections: that is the
      // claim, and why maxAgeMs and recheckMs exist.
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      expect(await attempt(port, 150)).toBe('open');
      first.destroy();
      second.destroy();
    } finally {
      await appliance.stop();
    }
  });

  it('maxAgeMs: a held connection stops hiding a fault once its verdict is too old', async () => {
    const { appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0, maxAgeMs: 200 }));
    try {
      const held = await open(port);
      appliance.board.sim!.faults.inject({ target: 'rail-5v', kind: 'nack' });
      expect(await attempt(port, 100)).toBe('open');
      await new Promise((resolve) => setTimeout(resolve, 250));
      expect(await attempt(port, 300)).toBe('reset');
      held.destroy();
    } finally {
      await appliance.stop();
    }
  });

  it('recheckMs: a fault injected while connections are held resets them all', async () => {
    const { appliance, port } = await startAppliance(applianceConfig({ recheckMs: 100 }));
    try {
      const clients = await Promise.all([open(port), open(port)]);
      const fates = clients.map((c) => fate(c, 2000));
      const injectedAt = performance.now();
      appliance.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
      expect(await Promise.all(fates)).toEqual(['reset', 'reset']);
      expect(performance.now() - injectedAt).toBeLessThan(100 + 500);
      expect(appliance.services[0]!.gate.stats().recheckReset).toBe(2);
    } finally {
      await appliance.stop();
    }
  });

  it('a Modbus request sent with the SYN is answered after the verdict', async () => {
    const { appliance, port } = await startAppliance(applianceConfig());
    try {
      const socket = await open(port);
      socket.write(readInputRegisters(7, 0, 2));
      const answer = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
      expect(answer.readUInt16BE(0)).toBe(7);
      expect(answer[7]).toBe(4);
      expect([answer.readUInt16BE(9), answer.readUInt16BE(11)]).toEqual([1, 1]);
      socket.destroy();
    } finally {
      await appliance.stop();
    }
  });
});

describe('Modbus write access', () => {
  it('writeAllow refuses writes from other addresses with exception 0x01, reads still answered', async () => {
    const config = applianceConfig({}, (c) => ({ ...c, services: c.services.map((s) => ({ ...s, writeAllow: ['10.0.0.9'] })) }));
    const { appliance, port } = await startAppliance(config);
    try {
      const socket = await open(port);
      const answers: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => answers.push(chunk));
      socket.write(Buffer.from([0, 1, 0, 0, 0, 6, 1, 5, 0, 0, 0xff, 0]));
      socket.write(readInputRegisters(2, 0, 1));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const all = Buffer.concat(answers);
      expect([...all.subarray(0, 9)]).toEqual([0, 1, 0, 0, 0, 3, 1, 0x85, 0x01]);
      expect(all.readUInt16BE(9)).toBe(2);
      expect(appliance.board.sim!.gpio.level('relay')).toBe(0);
      socket.destroy();
    } finally {
      await appliance.stop();
    }
  });
});

describe('watchdog', () => {
  it('a stalled event loop lets the watchdog fire; the board resets and the firmware comes back', async () => {
    const { appliance, port } = await startAppliance(
      applianceConfig({}, (c) => ({ ...c, watchdog: { device: '/dev/watchdog', timeoutS: 1, kickIntervalMs: 200 } })),
    );
    try {
      const stallUntil = Date.now() + 1500;
      while (Date.now() < stallUntil);
      const deadline = Date.now() + 5000;
      while (appliance.restartCount === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(appliance.board.sim!.resets).toBe(1);
      expect(appliance.restartCount).toBe(1);
      expect(appliance.services[0]!.port).toBe(port);
      expect(await attempt(port, 150)).toBe('open');
      const wdt = appliance.board.sim!.watchdogModel!;
      expect(wdt.isArmed).toBe(true);
    } finally {
      await appliance.stop();
    }
  });
});
