/**
 * The firmware on the sim board over real loopback sockets: every fault the Modbus service depends on
 * resets a connecting client; a healthy board never does.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import { watchFaults } from '../helpers/faults.js';
import type { BoardConfig } from '../../config/board-config.js';
import { selectBoard } from '../../config/boards.js';
import { logSink } from '../helpers/log.js';
import { until } from '../helpers/wait.js';
import { admitted, applianceConfig, attempt, boards, fate, open, readInputRegisters, serviceFaultMatrix, startAppliance } from './helpers.js';

describe('every fault the service depends on resets a connecting client', () => {
  let appliance: Appliance;
  beforeAll(async () => {
    ({ appliance } = await startAppliance(applianceConfig({ recheckMs: 0 })));
  });
  afterAll(() => appliance.stop());

  const { targets, healthyLevel, params, degrading } = serviceFaultMatrix(applianceConfig());

  it('covers every fault kind the sim offers for those targets', () => {
    const catalogue = appliance.board.sim!.faults.catalogue();
    const kinds = targets.flatMap((t) => (catalogue[t] ?? []).map((k) => `${t}:${k.kind}`));
    expect(kinds.length).toBeGreaterThan(30);
    expect(targets.every((t) => catalogue[t])).toBe(true);
  });

  for (const target of targets) {
    it(`${target}: each fault kind -> RST; cleared -> accepted`, async () => {
      const sim = appliance.board.sim!;
      const watch = watchFaults(sim.faults);
      for (const { kind } of sim.faults.catalogue()[target]!) {
        const harmless =
          (kind === 'stuck-high' && healthyLevel.get(target) === 1) || (kind === 'stuck-low' && healthyLevel.get(target) === 0) || degrading.has(`${target}:${kind}`);
        sim.faults.inject({ target, kind, ...(params[kind] ? { params: params[kind] } : {}) });
        // A fault shows in the first diagnosis that meets it: a sensor in normal mode (BME280) shows
        // it with its next measurement, one standby period later, so connects before that are accepted.
        let seen = await attempt(appliance);
        if (harmless) expect(`${kind}: ${seen}`).toBe(`${kind}: open`);
        else await until(async () => seen === 'reset' || (seen = await attempt(appliance)) === 'reset', `${target} ${kind} to reset a connect (last: ${seen})`);
        sim.faults.clearAll();
        // Once cleared, the next diagnoses see it gone: a sensor in normal mode shows a fresh measurement
        // one standby period later, an error rate once its window no longer holds the burst.
        let after = '';
        await until(async () => (after = await attempt(appliance)) === 'open', `a connect accepted after clearing ${target} ${kind} (last: ${after})`);
      }
      watch.stop();
      watch.expectAllHit();
    });
  }
});

describe('gate policies through the running firmware', () => {
  it('onFail close answers a failed diagnosis with FIN instead of RST', async () => {
    const { appliance } = await startAppliance(applianceConfig({ onFail: 'close' }));
    try {
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      expect(await attempt(appliance)).toBe('closed');
    } finally {
      await appliance.stop();
    }
  });

  it('claim 5: a second client reuses the verdict of the held first connection', async () => {
    const { appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0 }));
    try {
      const gate = appliance.services[0]!.gate;
      const first = await admitted(port);
      const diagnosed = gate.stats().diagnosed;
      const second = await admitted(port);
      expect(gate.stats()).toMatchObject({ diagnosed, reused: 1, held: 2 });
      // While the first connection is held, even a fault goes unseen by new connections: that is the
      // claim, and why maxAgeMs and recheckMs exist.
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      expect(await attempt(appliance)).toBe('open');
      first.destroy();
      second.destroy();
    } finally {
      await appliance.stop();
    }
  });

  it('maxAgeMs: a held connection stops hiding a fault once its verdict is too old', async () => {
    const maxAgeMs = 30_000;
    // No background refresh either: it would find the fault by itself and withdraw the verdict.
    const { appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0, maxAgeMs }, (c) => ({ ...c, refreshMs: undefined })));
    try {
      const held = await admitted(port);
      // Verdict age is board-clock time: held still, the board cannot age the verdict however slow
      // the machine, and the reuse below is the claim's, not a race against maxAgeMs.
      const clock = appliance.board.sim!.clock;
      clock.stopRealtime();
      appliance.board.sim!.faults.inject({ target: 'rail-5v', kind: 'nack' });
      expect(await attempt(appliance)).toBe('open');
      await clock.advance(maxAgeMs + 1);
      // The next connect's diagnosis reads the rail over the bus, on board time again.
      clock.startRealtime(1);
      expect(await attempt(appliance)).toBe('reset');
      held.destroy();
    } finally {
      await appliance.stop();
    }
  });

  it('recheckMs: a fault injected while connections are held resets them all', async () => {
    const { appliance, port } = await startAppliance(applianceConfig({ recheckMs: 100 }));
    try {
      // How soon is for the bench to measure (bench/monitor.ts: fault -> held connection lost).
      const clients = await Promise.all([admitted(port), admitted(port)]);
      const fates = clients.map((c) => fate(c, 10_000));
      appliance.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
      expect(await Promise.all(fates)).toEqual(['reset', 'reset']);
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
      // The exception (9 bytes) and the read's answer (11 bytes).
      await until(() => Buffer.concat(answers).length >= 20, 'both answers');
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

describe('Modbus write access by default', () => {
  const writeRelay = Buffer.from([0, 1, 0, 0, 0, 6, 1, 5, 0, 0, 0xff, 0]);

  /** Writes the relay coil on, then reads coil 0; resolves with the write's answer and the coil read. */
  async function writeThenRead(port: number): Promise<{ write: number[]; coil: number[] }> {
    const socket = await open(port);
    const answers: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => answers.push(chunk));
    socket.write(writeRelay);
    socket.write(Buffer.from([0, 2, 0, 0, 0, 6, 1, 1, 0, 0, 0, 1]));
    // A write's answer is 9 bytes (exception) or 12 (echo); the coil read's is 10.
    await until(() => [19, 22].includes(Buffer.concat(answers).length), 'both answers');
    socket.destroy();
    const all = Buffer.concat(answers);
    const split = all.length - 10;
    return { write: [...all.subarray(7, split)], coil: [...all.subarray(all.length - 3)] };
  }

  it('a Pi entry as shipped (0.0.0.0, no writeAllow): writes answered exception 01, reads answered, a start-up warning says how to allow them', async () => {
    const rpi4 = structuredClone(selectBoard(boards, 'rpi4')) as BoardConfig;
    expect(rpi4.services[0]).toMatchObject({ listen: '0.0.0.0:502' });
    expect(rpi4.services[0]?.writeAllow).toBeUndefined();
    const sink = logSink('info');
    const { appliance, port } = await startAppliance(rpi4, { forceSim: true, listen: { modbus: '0.0.0.0:0' }, logger: sink.logger });
    try {
      const { write, coil } = await writeThenRead(port);
      expect(write).toEqual([0x85, 0x01]);
      expect(coil).toEqual([0x01, 0x01, 0x00]);
      const warning = sink.lines().find((line) => typeof line.msg === 'string' && line.msg.includes('no writeAllow'));
      expect(warning).toMatchObject({ level: 40, listen: '0.0.0.0' });
      expect(warning?.msg).toContain('"writeAllow": ["10.0.0.0/24"]');
      expect(warning?.msg).toContain('modbus-tls');
    } finally {
      await appliance.stop();
    }
  });

  it("a Pi entry's RS-485 DE line is the serial port's, never a coil: coil 0 is the relay and coil 1 does not exist", async () => {
    const rpi4 = structuredClone(selectBoard(boards, 'rpi4')) as BoardConfig;
    expect(rpi4.serial?.[0]?.rs485).toMatchObject({ direction: 'gpio', deLine: 'rs485-de' });
    const { appliance, port } = await startAppliance(rpi4, { forceSim: true, listen: { modbus: '127.0.0.1:0' } });
    try {
      const socket = await open(port);
      const answers: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => answers.push(chunk));
      socket.write(Buffer.from([0, 3, 0, 0, 0, 6, 1, 1, 0, 1, 0, 1]));
      await until(() => Buffer.concat(answers).length >= 9, 'the answer');
      socket.destroy();
      expect([...Buffer.concat(answers).subarray(7)]).toEqual([0x81, 0x02]);
    } finally {
      await appliance.stop();
    }
  });

  it('on loopback without writeAllow: writes are allowed and nothing is said', async () => {
    const sink = logSink('info');
    const { appliance, port } = await startAppliance(applianceConfig(), { logger: sink.logger });
    try {
      expect((await writeThenRead(port)).write).toEqual([0x05, 0x00, 0x00, 0xff, 0x00]);
      expect(appliance.board.sim!.gpio.level('relay')).toBe(1);
      expect(sink.lines().some((line) => typeof line.msg === 'string' && line.msg.includes('writeAllow'))).toBe(false);
    } finally {
      await appliance.stop();
    }
  });

  it('beyond loopback, a writeAllow subnet lets its clients write', async () => {
    const config = applianceConfig({}, (c) => ({ ...c, services: c.services.map((s) => ({ ...s, listen: '0.0.0.0:0', writeAllow: ['10.0.0.0/8', '127.0.0.0/8'] })) }));
    const { appliance, port } = await startAppliance(config);
    try {
      expect((await writeThenRead(port)).write).toEqual([0x05, 0x00, 0x00, 0xff, 0x00]);
      expect(appliance.board.sim!.gpio.level('relay')).toBe(1);
    } finally {
      await appliance.stop();
    }
  });
});

describe('watchdog', () => {
  it('a stalled event loop lets the watchdog fire; the board resets and the firmware comes back', { timeout: 60_000 }, async () => {
    const { appliance, port } = await startAppliance(
      applianceConfig({}, (c) => ({ ...c, watchdog: { device: '/dev/watchdog', timeoutS: 1, kickIntervalMs: 200 } })),
    );
    try {
      const stallUntil = Date.now() + 1500;
      while (Date.now() < stallUntil);
      await until(() => appliance.restartCount > 0, 'the firmware to restart after the board reset', 50_000);
      expect(appliance.board.sim!.resets).toBe(1);
      expect(appliance.restartCount).toBe(1);
      expect(appliance.services[0]!.port).toBe(port);
      expect(await attempt(appliance)).toBe('open');
      const wdt = appliance.board.sim!.watchdogModel!;
      expect(wdt.isArmed).toBe(true);
    } finally {
      await appliance.stop();
    }
  });

  it('a restart that cannot listen (its port briefly taken) is retried with backoff; /status says the service is down meanwhile', async () => {
    const { appliance, port } = await startAppliance(
      applianceConfig({}, (c) => ({ ...c, watchdog: { device: '/dev/watchdog', timeoutS: 1, kickIntervalMs: 200 } })),
    );
    const squatter = createServer();
    try {
      // The firmware closes its listening socket as the reset begins; take the port before it is back.
      appliance.board.sim!.onReset(() => squatter.listen(port, '127.0.0.1'));
      appliance.board.sim!.faults.inject({ target: 'watchdog', kind: 'starve' });
      await until(() => appliance.status().down !== undefined, 'a failed restart');
      const down = appliance.status();
      expect(down.down).toMatchObject({ attempts: 1, lastError: { code: 'ERR_GATE_LISTEN' } });
      expect(down.services[0]!.stats.listening).toBe(false);
      appliance.board.sim!.faults.clearAll();
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
      await until(() => appliance.restartCount === 1, 'the firmware back');
      expect(appliance.status().down).toBeUndefined();
      expect(appliance.status().services[0]!.stats.listening).toBe(true);
      expect(await attempt(appliance)).toBe('open');
    } finally {
      squatter.close();
      await appliance.stop();
    }
  });
});
