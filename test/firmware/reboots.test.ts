/**
 * Reboots are visible, on the sim appliance driven by its virtual clock: a starved watchdog resets
 * the board (sim/watchdog.ts, as the watchdog core's countdown ends in a hardware reset), the sim board
 * boots with a new boot id as the kernel's boot_id changes, the watchdog's boot status says
 * WDIOF_CARDRESET (as i6300esb.c esb_initdevice reports its timeout bit), and the appliance restarts
 * the firmware. The boot count rises, the cause is the watchdog's, and a reset loop fails the watchdog
 * component so the service refuses - in /status, /metrics and the Modbus input registers.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import { bootRecordFile } from '../../firmware/boot-record.js';
import type { VirtualClock } from '../../sim/clock.js';
import { applianceConfig, attempt, open, startAppliance } from './helpers.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/**
 * Moves the virtual clock on in small steps until `condition` holds; `limitMs` of virtual time turns a
 * hang into a failure. Each step also lets real I/O run (a restart listens on a socket and writes the
 * boot record), so the board's time cannot race ahead of a restart and expire the new watchdog before
 * the firmware behind it is up: at most ten times faster than real time.
 */
async function driveUntil(clock: VirtualClock, condition: () => boolean, what: string | (() => string), limitMs = 120_000): Promise<void> {
  for (let driven = 0; !condition(); driven += 10) {
    if (driven > limitMs) throw new Error(`${typeof what === 'string' ? what : what()}: not within ${limitMs} ms of virtual time`);
    await clock.advance(10);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Reads the boot record's input registers (1000-1006) over Modbus TCP, driving the clock meanwhile. */
async function bootRegisters(clock: VirtualClock, port: number): Promise<number[]> {
  const socket: Socket = await open(port);
  const request = Buffer.from([0, 7, 0, 0, 0, 6, 1, 4, 0x03, 0xe8, 0, 7]);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.write(request);
  try {
    await driveUntil(clock, () => Buffer.concat(chunks).length >= 9 + 14, 'the answer to a read of IR 1000-1006');
    const answer = Buffer.concat(chunks);
    expect([...answer.subarray(7, 9)]).toEqual([4, 14]);
    return Array.from({ length: 7 }, (_, i) => answer.readUInt16BE(9 + 2 * i));
  } finally {
    socket.destroy();
  }
}

async function reboots(resetLoopCount: number, resetLoopWindowS: number): Promise<{ appliance: Appliance; clock: VirtualClock; port: number; stateDir: string }> {
  const stateDir = mkdtempSync(join(tmpdir(), `handcheck-reboots-${process.pid}-`));
  cleanup.push(() => rmSync(stateDir, { recursive: true, force: true }));
  const { appliance, port } = await startAppliance(
    applianceConfig({ recheckMs: 0 }, (c) => ({ ...c, watchdog: { device: '/dev/watchdog', timeoutS: 10, resetLoopCount, resetLoopWindowS } })),
    { stateDir },
  );
  cleanup.push(() => appliance.stop());
  const clock = appliance.board.sim!.clock;
  clock.stopRealtime();
  return { appliance, clock, port, stateDir };
}

describe('reboots on the sim board', () => {
  it('a watchdog reset is a new boot: the count rises, the cause is the watchdog, in /status, /metrics and IR 1000-1006 (with the reset-loop limit)', { timeout: 120_000 }, async () => {
    const { appliance, clock, port, stateDir } = await reboots(3, 3600);
    const first = appliance.status().boot!;
    expect(first).toMatchObject({ count: 1, lastResetCause: 'power-on', uncleanResets: 0, file: join(stateDir, bootRecordFile) });
    const initial = await bootRegisters(clock, port);
    expect(initial).toEqual([0, 1, 0, expect.any(Number), 1, 0, 3]);
    expect(initial[3]).toBeLessThanOrEqual(appliance.status().boot!.uptimeS);

    const starve = appliance.board.sim!.faults.inject({ target: 'watchdog', kind: 'starve' });
    await driveUntil(clock, () => appliance.board.sim!.resets === 1, 'the board reset by its watchdog');
    appliance.board.sim!.faults.clear(starve.id);
    await driveUntil(clock, () => appliance.restartCount === 1, 'the firmware back after the reset');

    const second = appliance.status().boot!;
    expect(second).toMatchObject({ count: 2, lastResetCause: 'watchdog', uncleanResets: 1 });
    expect(second.id).not.toBe(first.id);
    expect(second.bootedAt).toBeGreaterThan(first.bootedAt);
    await clock.advance(65_000);
    const registers = await bootRegisters(clock, port);
    expect(registers).toEqual([0, 2, 0, expect.any(Number), 2, 1, 3]);
    expect(registers[3]).toBeGreaterThanOrEqual(65);
    expect(registers[3]).toBeLessThanOrEqual(appliance.status().boot!.uptimeS);

    const metrics = (await appliance.metrics.render()).body;
    expect(metrics).toMatch(/^handcheck_boot_count\{board="sim-appliance"\} 2$/m);
    expect(metrics).toMatch(new RegExp(`^handcheck_boot_time_seconds\\{board="sim-appliance"\\} ${second.bootedAt / 1000}$`, 'm'));
    expect(metrics).toMatch(/^handcheck_last_reset_cause\{cause="watchdog",board="sim-appliance"\} 1$/m);
    for (const cause of ['unknown', 'power-on', 'orderly']) expect(metrics).toMatch(new RegExp(`^handcheck_last_reset_cause\\{cause="${cause}",board="sim-appliance"\\} 0$`, 'm'));
    expect(metrics).toMatch(/^handcheck_unclean_resets_recent\{board="sim-appliance"\} 1$/m);
    expect(JSON.parse(readFileSync(join(stateDir, bootRecordFile), 'utf8'))).toMatchObject({ bootCount: 2, lastResetCause: 'watchdog', shutdown: 'running' });

    // An orderly stop is recorded, so the next boot of this board would say `orderly`.
    await appliance.stop();
    expect(JSON.parse(readFileSync(join(stateDir, bootRecordFile), 'utf8'))).toMatchObject({ bootCount: 2, shutdown: 'orderly' });
  });

  it('resetLoopCount watchdog resets within resetLoopWindowS fail the watchdog component, naming the count, and the service refuses until the window holds fewer', { timeout: 120_000 }, async () => {
    const { appliance, clock } = await reboots(3, 60);
    const sim = appliance.board.sim!;
    const starve = sim.faults.inject({ target: 'watchdog', kind: 'starve' });
    await driveUntil(clock, () => sim.resets === 3, () => `three watchdog resets (${sim.resets} so far)`);
    sim.faults.clear(starve.id);
    await driveUntil(clock, () => appliance.restartCount === 3, () => `the firmware back after the third reset (restarts ${appliance.restartCount}, resets ${sim.resets}, down ${JSON.stringify(appliance.status().down)})`);
    expect(appliance.status().boot).toMatchObject({ count: 4, lastResetCause: 'watchdog', uncleanResets: 3 });

    // The keeper's kicks reach the watchdog again, so only the loop is wrong.
    await driveUntil(clock, () => appliance.devices.state('watchdog').reason.startsWith('reset loop'), 'the watchdog component to show the loop');
    expect(appliance.devices.state('watchdog')).toMatchObject({ state: 'failed', reason: "reset loop: 3 unclean resets (the watchdog's or of unknown cause) within 60 s (limit 3)" });
    expect(await attemptOn(clock, appliance)).toBe('reset');

    // The first of the three resets leaves the 60 s window: no loop any more.
    const firstReset = JSON.parse(readFileSync(appliance.status().boot!.file, 'utf8')) as { uncleanResets: number[] };
    await driveUntil(clock, () => clock.now() > firstReset.uncleanResets[0]! + 60_000 && appliance.devices.state('watchdog').state === 'ok', 'the watchdog component ok again', 180_000);
    expect(appliance.status().boot!.uncleanResets).toBe(2);
    expect(await attemptOn(clock, appliance)).toBe('open');
  });
});

/** A connect to the service, with the virtual clock driven while its diagnosis runs. */
async function attemptOn(clock: VirtualClock, appliance: Appliance): Promise<string> {
  let result: string | undefined;
  const pending = attempt(appliance).then((r) => (result = r));
  await driveUntil(clock, () => result !== undefined, 'a decision on the connect');
  await pending;
  return result!;
}
