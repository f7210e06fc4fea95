/**
 * Reboot loops and reboots nobody watched, on the sim appliance whose watchdog resets the board when
 * starved (`watchdog starve`: the firmware stalls and stops kicking it, as a real firmware wedged in a
 * loop does; the board then boots again and the firmware comes back, app/appliance.ts). Its boot
 * record is read over Modbus on a service that depends on no component (IR 1000-1006).
 *
 * - The monitor's own count: `rebootLoop.count` reboots within `windowMs` put the target in
 *   `reboot-loop`, with an alert of its own; the window passing with no further reboot ends it, the
 *   alert resolved with the same id. A loop that ends while the target is faulty opens a new down
 *   episode; the alert command, beside the webhook, is told each kind in HANDCHECK_KIND.
 * - The dashboard, in headless Chromium (Debian `chromium` driven by playwright-core), draws the
 *   loop in its colour and glyph, in its place in the worst-first order, and its page lists the
 *   reboots and the loop.
 * - A monitor restarted with `--db` during a loop continues it, raises its alert in a sink that has
 *   not heard of it, and ends it when the window of its last reboot passes.
 * - The boot record of a firmware from before IR 1006 is still read (its six registers).
 * - A monitor with `--db` that reads a lower boot count than it kept takes it as the baseline: logged,
 *   no reboot reported, the next reboot counted from it.
 * - A monitor process with `--db` that stops, while the appliance reboots twice, and starts again
 *   reports the two reboots it missed (one transition, one alert, `reboots: 2`), and since two
 *   reboots are a loop for that target, the loop too.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import { type AddressInfo, createServer } from 'node:net';
import type { Alert } from '../../monitor/alerts.js';
import { bootRecord } from '../../monitor/appliance-client.js';
import { Boots, type SeenBoot } from '../../monitor/boots.js';
import { History } from '../../monitor/history.js';
import { statePalette } from '../../monitor/dashboard.js';
import { startMonitorHttp } from '../../monitor/http.js';
import { applianceConfig, startAppliance } from '../firmware/helpers.js';
import { logSink, silent } from '../helpers/log.js';
import { freePort } from '../helpers/ports.js';
import { handcheck } from '../helpers/processes.js';
import { until, waitForOutput } from '../helpers/wait.js';
import { type MonitorProcess, Receiver, loopByTwoReboots, monitorProcess, nextTransition, rebootByWatchdog, reach, startMonitor, tempDir, twoRebootsWindowMs, withQueryPort } from './helpers.js';

/** The sim appliance with a one-second watchdog on the board's clock in real time, and a reset-loop limit of its own it does not reach here. */
async function appliance(stateDir: string): Promise<{ appliance: Appliance; port: number; queryPort: number }> {
  const config = applianceConfig({ recheckMs: 0 }, (c) => withQueryPort({ ...c, watchdog: { ...c.watchdog!, timeoutS: 1, resetLoopCount: 10, resetLoopWindowS: 3600 } }));
  const started = await startAppliance(config, { stateDir });
  return { ...started, queryPort: started.appliance.services.find((s) => s.config.id === 'modbus-query')!.port };
}

describe('a reboot loop the monitor counts', () => {
  let sim: Awaited<ReturnType<typeof appliance>>;
  const tmp = tempDir();
  beforeAll(async () => {
    sim = await appliance(tmp.dir);
  });
  afterAll(async () => {
    await sim.appliance.stop();
    tmp.remove();
  });

  for (const mode of ['probe', 'hold'] as const) {
    it(`${mode} mode: two reboots within the window are the reboot-loop state with an alert of its own; a window with no reboot ends both`, { timeout: 300_000 }, async () => {
      const receiver = await new Receiver().listen();
      const windowMs = twoRebootsWindowMs;
      const monitor = startMonitor({
        targets: [{ name: 'pump', address: `127.0.0.1:${sim.port}`, mode, intervalMs: 100, graceMs: 60, modbus: { port: sim.queryPort, timeoutMs: 5000 }, rebootLoop: { count: 2, windowMs } }],
        alerts: { webhook: { url: receiver.url } },
      });
      try {
        const alerted = receiver.next((a) => a.kind === 'reboot-loop' && a.status === 'firing', 300_000);
        const entered = await loopByTwoReboots(monitor, 'pump', sim.appliance);
        expect(entered.reason).toBe(`reboot loop: 2 reboots within ${windowMs / 1000} s (a loop is 2)`);
        expect(monitor.target('pump')).toMatchObject({ state: 'reboot-loop', since: entered.at });
        expect(monitor.history.forTarget('pump').filter((t) => t.to === 'reboot-loop' && t.from !== 'reboot-loop')).toEqual([entered]);
        const metrics = monitor.metrics.renderTargets();
        expect(metrics).toContain('handcheck_monitor_target_state{target="pump",state="reboot-loop"} 1');
        expect(metrics).toContain('handcheck_monitor_target_up{target="pump"} 0');
        const firing = (await alerted).body as Alert;
        expect(firing).toMatchObject({ kind: 'reboot-loop', status: 'firing', target: 'pump', to: 'reboot-loop', reason: entered.reason, startsAt: new Date(entered.at).toISOString() });

        const left = await nextTransition(monitor, 'pump', { leaving: 'reboot-loop' }, windowMs + 60_000);
        expect(left.to).toBe('up');
        expect(left.reason).toMatch(new RegExp(`^no reboot for ${windowMs / 1000} s; now handshake in `));
        const resolved = (await receiver.next((a) => a.kind === 'reboot-loop' && a.status === 'resolved', 10_000, true)).body as Alert;
        expect(resolved).toMatchObject({ id: firing.id, from: 'reboot-loop', to: 'up', endsAt: new Date(left.at).toISOString() });
        // While the loop held, the reboots' refusals were the loop's, not down episodes of their own.
        const down = receiver.alerts.filter((a) => a.kind === 'down' && a.status === 'firing' && Date.parse(a.at) > entered.at && Date.parse(a.at) < left.at);
        expect(down).toEqual([]);
      } finally {
        sim.appliance.board.sim!.faults.clearAll();
        await monitor.close();
        await receiver.close();
      }
    });
  }

  it('a loop that ends while the target is faulty opens a new down episode: an alert of its own, and the alert command told each kind', { timeout: 300_000 }, async () => {
    const receiver = await new Receiver().listen();
    const told = join(tmp.dir, 'told');
    const monitor = startMonitor({
      targets: [{ name: 'pump', address: `127.0.0.1:${sim.port}`, intervalMs: 100, graceMs: 60, modbus: { port: sim.queryPort, timeoutMs: 5000 }, rebootLoop: { count: 2, windowMs: twoRebootsWindowMs } }],
      alerts: { webhook: { url: receiver.url }, command: `echo "$HANDCHECK_KIND $HANDCHECK_STATUS $HANDCHECK_ALERT_ID" >> '${told}'` },
    });
    try {
      const entered = await loopByTwoReboots(monitor, 'pump', sim.appliance);
      // A fault under the loop: the connects show it, the state stays the loop's.
      sim.appliance.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
      await until(() => monitor.target('pump')!.health === 'reset', 'the fault under the loop', 30_000);
      expect(monitor.target('pump')!.state).toBe('reboot-loop');

      const left = await nextTransition(monitor, 'pump', { leaving: 'reboot-loop' }, twoRebootsWindowMs + 60_000);
      expect(left).toMatchObject({ to: 'reset', reason: expect.stringMatching(new RegExp(`^no reboot for ${twoRebootsWindowMs / 1000} s; now RST `)) as string });
      await monitor.alerter.idle();
      const episodes = receiver.alerts.filter((a) => a.kind === 'down');
      const opened = episodes.filter((a) => a.startsAt === new Date(left.at).toISOString());
      expect(opened).toEqual([expect.objectContaining({ status: 'firing', from: 'reboot-loop', to: 'reset', at: new Date(left.at).toISOString() })]);
      // A new episode: no down alert before the loop ended had its id.
      expect(episodes.filter((a) => a !== opened[0]).map((a) => a.id)).not.toContain(opened[0]!.id);
      const loop = receiver.alerts.filter((a) => a.kind === 'reboot-loop');
      expect(loop.map((a) => a.status)).toEqual(['firing', 'resolved']);
      expect(loop[1]).toMatchObject({ startsAt: new Date(entered.at).toISOString(), to: 'reset', endsAt: new Date(left.at).toISOString() });

      // The alert command, a sink beside the webhook, was told each kind of alert in HANDCHECK_KIND.
      const lines = readFileSync(told, 'utf8').trim().split('\n');
      expect(new Set(lines.map((l) => l.split(' ')[0]))).toEqual(new Set(['reboot', 'reboot-loop', 'down']));
      expect(lines).toContain(`reboot-loop resolved ${loop[1]!.id}`);
      expect(lines).toContain(`down firing ${opened[0]!.id}`);
      const reboots = receiver.alerts.filter((a) => a.kind === 'reboot');
      expect(reboots).toHaveLength(2);
      for (const reboot of reboots) expect(lines).toContain(`reboot firing ${reboot.id}`);
    } finally {
      sim.appliance.board.sim!.faults.clearAll();
      await monitor.close();
      await receiver.close();
    }
  });
});

describe('a reboot loop on the dashboard', () => {
  it('the row in its place worst first (after refused, before up), in its colour and glyph; its page lists the reboots and the loop', { timeout: 300_000 }, async () => {
    const tmp = tempDir();
    const sim = await appliance(tmp.dir);
    const monitor = startMonitor({
      defaults: { intervalMs: 100, graceMs: 60 },
      targets: [
        { name: 'pump', address: `127.0.0.1:${sim.port}`, modbus: { port: sim.queryPort, timeoutMs: 5000 }, rebootLoop: { count: 2 } },
        { name: 'plain', address: `127.0.0.1:${sim.queryPort}` },
        { name: 'spare', address: `127.0.0.1:${await freePort()}` },
      ],
    });
    const http = await startMonitorHttp({ monitor, host: '127.0.0.1', port: 0, logger: silent, batchMs: 100 });
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      await loopByTwoReboots(monitor, 'pump', sim.appliance);
      await Promise.all([reach(monitor, 'plain', 'up', 30_000), reach(monitor, 'spare', 'refused')]);
      const page = await browser.newPage({ viewport: { width: 1400, height: 500 } });
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      await page.goto(`http://127.0.0.1:${http.address.port}/`);
      await page.waitForSelector('body[data-ready="1"]');
      await page.waitForSelector('[data-target="pump"][data-state="reboot-loop"]');
      const rows = await page.evaluate(`Array.from(document.querySelectorAll('#list .row')).sort((a, b) => a.offsetTop - b.offsetTop).map((r) => r.dataset.target + ':' + r.dataset.state)`);
      expect(rows).toEqual(['spare:refused', 'pump:reboot-loop', 'plain:up']);
      expect(await page.textContent('[data-target="pump"] .badge')).toBe(`${statePalette['reboot-loop'].glyph}reboot-loop`);
      expect(await page.evaluate(`getComputedStyle(document.querySelector('[data-target="pump"] .badge')).backgroundColor`)).toBe('rgb(96, 42, 0)');
      expect(await page.textContent('[data-target="pump"] .reason')).toMatch(/^reboot loop: 2 reboots within 1 h \(a loop is 2\)/);
      expect(await page.textContent('#n-down')).toBe('2 down');
      expect(await page.textContent('#n-states')).toContain('1 reboot-loop');

      await page.click('[data-target="pump"] .name a');
      await page.waitForSelector('#detail[data-loaded="pump"]');
      await page.waitForSelector('#d-history tbody tr[data-to="reboot-loop"]');
      const history = (await page.evaluate(`Array.from(document.querySelectorAll('#d-history tbody tr')).map((r) => r.dataset.to + ' ' + r.querySelector('.reason').textContent)`)) as string[];
      expect(history.filter((h) => / rebooted: boot \d+ \(was \d+\)/.test(h))).toHaveLength(2);
      expect(history.filter((h) => h.startsWith('reboot-loop reboot loop: 2 reboots'))).toHaveLength(1);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await http.close();
      await monitor.close();
      await sim.appliance.stop();
      tmp.remove();
    }
  });
});

describe('the boot record of a firmware from before IR 1006', () => {
  it('is read as its six registers when the seven-register read is refused as an illegal data address', async () => {
    // Such a firmware's input register table ends at IR 1005: a read past it is exception 2, as
    // firmware/modbus-service.ts answers any read past its table (checkRange).
    const reads: number[] = [];
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.on('data', (frame: Buffer) => {
        const quantity = frame.readUInt16BE(10);
        reads.push(quantity);
        const pdu = quantity > 6 ? Buffer.from([0x84, 0x02]) : Buffer.from([0x04, 12, 0, 0, 0, 9, 0, 0, 0, 42, 0, 2, 0, 1]);
        const header = Buffer.alloc(7);
        frame.copy(header, 0, 0, 4);
        header.writeUInt16BE(pdu.length + 1, 4);
        header.writeUInt8(frame[6]!, 6);
        socket.write(Buffer.concat([header, pdu]));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const record = await bootRecord({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, unitId: 1, timeoutMs: 5000 });
      expect(record).toEqual({ count: 9, uptimeS: 42, lastResetCause: 'watchdog', uncleanResets: 1, loopLimit: undefined });
      expect(reads).toEqual([7, 6]);
    } finally {
      server.close();
    }
  });
});

describe('a reboot loop across a restart', () => {
  it('continues from the database: the state, its start, its alert, and its end when the window passes with no reboot', { timeout: 120_000 }, async () => {
    const tmp = tempDir();
    const listener = createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const receiver = await new Receiver().listen();
    const db = join(tmp.dir, 'history.db');
    const now = Date.now();
    // What a monitor that stopped during a loop left: the transition into it and the reboots it counted.
    const before = History.open(db);
    before.record({ target: 'pump', at: now - 6000, from: 'up', to: 'reboot-loop', reason: 'reboot loop: 3 reboots within 10 s (a loop is 3)', connectMs: undefined });
    before.record({ target: 'pump', at: now - 5000, from: 'reboot-loop', to: 'reboot-loop', reason: 'rebooted: boot 9 (was 8), ...', connectMs: undefined });
    new Boots(before.database).put('pump', { count: 9, bootedAt: now - 5000, seenAt: now - 5000, reboots: [now - 8000, now - 7000, now - 5000] });
    before.close();
    // The boot record cannot be read (nothing answers Modbus there): only the window can end the loop.
    const monitor = startMonitor({
      db,
      targets: [{ name: 'pump', address: `127.0.0.1:${(listener.address() as AddressInfo).port}`, intervalMs: 100, graceMs: 50, modbus: { port: await freePort(), timeoutMs: 500 }, rebootLoop: { count: 3, windowMs: 10_000 } }],
      alerts: { webhook: { url: receiver.url } },
    });
    try {
      expect(monitor.target('pump')).toMatchObject({ state: 'reboot-loop', since: now - 6000, bootCount: 9, reason: expect.stringMatching(/^reboot loop: 3 reboots within 10 s \(a loop is 3\)/) as string });
      const firing = (await receiver.next((a) => a.kind === 'reboot-loop', 10_000, true)).body as Alert;
      expect(firing).toMatchObject({ status: 'firing', startsAt: new Date(now - 6000).toISOString() });
      const left = await nextTransition(monitor, 'pump', { leaving: 'reboot-loop' }, 60_000);
      // The last reboot at now - 5000 and a 10 s window: not before now + 5000.
      expect(left.at).toBeGreaterThanOrEqual(now + 5000);
      expect(left).toMatchObject({ to: 'up', reason: expect.stringMatching(/^no reboot for 10 s; now handshake in /) as string });
      const resolved = (await receiver.next((a) => a.kind === 'reboot-loop' && a.status === 'resolved', 10_000, true)).body as Alert;
      expect(resolved.id).toBe(firing.id);
    } finally {
      await monitor.close();
      await receiver.close();
      listener.close();
      tmp.remove();
    }
  });
});

describe('a boot count lower than the one the database kept', () => {
  it('is the new baseline: logged, no reboot reported; the next reboot counts from it', { timeout: 300_000 }, async () => {
    const tmp = tempDir();
    const sim = await appliance(join(tmp.dir, 'state'));
    const receiver = await new Receiver().listen();
    const db = join(tmp.dir, 'history.db');
    // What a monitor kept of a boot record with a higher count (another appliance at this address, or
    // this one's before its record started again), last read a minute before this monitor starts.
    const now = Date.now();
    const kept = History.open(db);
    new Boots(kept.database).put('pump', { count: 1000, bootedAt: now - 120_000, seenAt: now - 60_000, reboots: [] });
    kept.close();
    const log = logSink('info');
    const monitor = startMonitor(
      { db, targets: [{ name: 'pump', address: `127.0.0.1:${sim.port}`, intervalMs: 100, graceMs: 60, modbus: { port: sim.queryPort, timeoutMs: 5000 } }], alerts: { webhook: { url: receiver.url } } },
      { logger: log.logger },
    );
    try {
      expect(monitor.target('pump')!.bootCount).toBe(1000);
      await until(() => monitor.target('pump')!.bootCount !== 1000, 'the boot record read', 30_000);
      const baseline = monitor.target('pump')!.bootCount!;
      expect(baseline).toBeLessThan(1000);
      expect(log.lines()).toContainEqual(expect.objectContaining({ level: 40, target: 'pump', boot: baseline, previous: 1000, msg: expect.stringMatching(/^the boot count went down/) as string }));
      expect(new Boots(monitor.history.database).get('pump')).toMatchObject({ count: baseline });
      expect(monitor.history.forTarget('pump').filter((t) => t.reason.startsWith('rebooted'))).toEqual([]);

      // The first reboot alert the receiver gets is the next reboot's, counted from the baseline: none came of the lower count.
      const rebooted = receiver.next((a) => a.kind === 'reboot', 60_000, true);
      await rebootByWatchdog(sim.appliance);
      expect((await rebooted).body).toMatchObject({ status: 'firing', reboots: 1, reason: expect.stringMatching(new RegExp(`^rebooted: boot ${baseline + 1} \\(was ${baseline}\\), `)) as string });
      await monitor.alerter.idle();
      expect(receiver.alerts.filter((a) => a.kind === 'reboot')).toHaveLength(1);
    } finally {
      await monitor.close();
      await receiver.close();
      await sim.appliance.stop();
      tmp.remove();
    }
  });
});

/** The boot the database keeps for `pump`, read while no monitor holds it. */
function keptBoot(db: string): SeenBoot {
  const history = History.open(db);
  try {
    return new Boots(history.database).get('pump')!;
  } finally {
    history.close();
  }
}

/** A monitor process with its dashboard on a port of its own, and that port's URL. */
async function monitorWithDashboard(args: string[]): Promise<MonitorProcess & { http: string }> {
  const running = monitorProcess(['--http', '127.0.0.1:0', '--log-level', 'warn', ...args]);
  const [, http] = await waitForOutput(running.child, /dashboard on (http:\/\/[\d.]+:\d+)\//, 'monitor');
  return { ...running, http: http! };
}

describe('reboots while no monitor was watching (a monitor process with --db)', () => {
  it('the monitor that starts again reports the reboots it missed, how many, and the loop they make', { timeout: 300_000 }, async () => {
    const tmp = tempDir();
    const sim = await appliance(join(tmp.dir, 'state'));
    const receiver = await new Receiver().listen();
    const db = join(tmp.dir, 'history.db');
    const config = join(tmp.dir, 'fleet.json');
    writeFileSync(
      config,
      JSON.stringify({
        targets: [{ name: 'pump', address: `127.0.0.1:${sim.port}`, intervalMs: 200, graceMs: 60, modbus: { port: sim.queryPort, timeoutMs: 5000 }, rebootLoop: { count: 2 } }],
        alerts: { webhook: { url: receiver.url } },
      }),
    );
    const bootCount = async (http: string): Promise<number | undefined> =>
      ((await (await fetch(`${http}/api/targets`)).json()) as { targets: Array<{ bootCount?: number }> }).targets[0]?.bootCount;
    let monitor = await monitorWithDashboard(['--config', config, '--db', db]);
    try {
      await until(async () => (await bootCount(monitor.http)) !== undefined, 'the first monitor reading the boot record', 60_000);
      const seen = (await bootCount(monitor.http))!;
      await monitor.stop();
      const kept = keptBoot(db);
      expect(kept.count).toBe(seen);

      await rebootByWatchdog(sim.appliance);
      await rebootByWatchdog(sim.appliance);

      monitor = await monitorWithDashboard(['--config', config, '--db', db]);
      const alert = (await receiver.next((a) => a.kind === 'reboot', 60_000, true)).body as Alert;
      expect(alert).toMatchObject({ target: 'pump', status: 'firing', reboots: 2 });
      expect(alert.reason).toMatch(new RegExp(`^rebooted 2 times while no monitor was watching: boot ${seen + 2} \\(last seen boot ${seen} at ${new Date(kept.seenAt).toISOString()}\\), last reset cause (watchdog|unknown), `));
      await until(() => monitor.lines.some((l) => l.reason === alert.reason), 'the reboot as a JSON line', 10_000);
      // Two reboots within the hour are a loop for this target, seen across the restart.
      await until(() => monitor.lines.some((l) => l.to === 'reboot-loop'), 'the reboot loop as a JSON line', 30_000);
      expect((await receiver.next((a) => a.kind === 'reboot-loop', 10_000, true)).body).toMatchObject({ status: 'firing', to: 'reboot-loop' });
      await monitor.stop();
      // Of the two reboots only the newest has a known time (its boot); the other is counted at the time the old boot was last seen.
      const reboots = keptBoot(db).reboots;
      expect(reboots).toHaveLength(2);
      expect(reboots[0]).toBe(kept.seenAt);
      expect(reboots[1]).toBeGreaterThan(kept.seenAt);
      const history = await handcheck('monitor', 'history', 'pump', '--db', db);
      expect(history.stdout).toContain('rebooted 2 times while no monitor was watching');
      expect(history.stdout).toContain('reboot-loop');
    } finally {
      await monitor.stop();
      await receiver.close();
      await sim.appliance.stop();
      tmp.remove();
    }
  });
});
