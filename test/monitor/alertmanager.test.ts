/**
 * The monitor's alerts in a real Alertmanager (Debian's prometheus-alertmanager, run on loopback with
 * a temporary config and storage): a target that goes down is an active alert in
 * `GET /api/v2/alerts` with the labels Alertmanager routes on, routed by `site` to its receiver; its
 * recovery resolves it by `endsAt`; a monitor restarted while the target is still down posts it again;
 * a reboot loop is an alert of its own (`HandcheckTargetRebootLoop`), resolved when the loop ends.
 * Without Alertmanager: a firing alert ends four resend periods after its post and is posted again
 * every period, so Alertmanager holds it while the monitor lives.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import type { Alert } from '../../monitor/alerts.js';
import { resolveConfig } from '../../monitor/config.js';
import { AlertmanagerSink } from '../../monitor/sinks.js';
import { applianceConfig, startAppliance } from '../firmware/helpers.js';
import { describeWhen } from '../helpers/requirements.js';
import { until, waitForOutput } from '../helpers/wait.js';
import { Receiver, loopByTwoReboots, reach, startMonitor, tempDir, twoRebootsWindowMs, withQueryPort } from './helpers.js';

const binary = '/usr/bin/prometheus-alertmanager';

interface GettableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL?: string;
  status: { state: string };
}

/** Alertmanager's webhook notification (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config). */
interface Notification {
  receiver: string;
  status: 'firing' | 'resolved';
  alerts: Array<{ status: string; labels: Record<string, string> }>;
}

class Alertmanager {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(dir: string, config: string): Promise<Alertmanager> {
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeFileSync(join(dir, 'alertmanager.yml'), config);
    const child = spawn(binary, [`--config.file=${join(dir, 'alertmanager.yml')}`, `--storage.path=${join(dir, 'data')}`, '--web.listen-address=127.0.0.1:0', '--cluster.listen-address='], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const [, address] = await waitForOutput(child, /msg="Listening on" address=(127\.0\.0\.1:\d+)/, 'alertmanager');
      return new Alertmanager(child, `http://${address}`);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
  }

  /** Alerts Alertmanager holds as active (resolved ones are not listed). */
  async alerts(): Promise<GettableAlert[]> {
    const response = await fetch(`${this.url}/api/v2/alerts`);
    expect(response.status).toBe(200);
    return (await response.json()) as GettableAlert[];
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}

describeWhen(existsSync(binary) ? undefined : `${binary} is missing (apt-get install prometheus-alertmanager)`, 'alerts in a real Alertmanager', () => {
  let appliance: Appliance;
  let port: number;
  let alertmanager: Alertmanager;
  let notifications: Receiver;
  const tmp = tempDir();
  beforeAll(async () => {
    ({ appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0 })));
    notifications = await new Receiver().listen();
    // The routing of docs/monitor.md: by site, to a receiver that hears of resolutions too.
    alertmanager = await Alertmanager.start(
      tmp.dir,
      `route:
  receiver: fallback
  group_by: [alertname, target]
  group_wait: 0s
  group_interval: 1s
  routes:
    - matchers: ['site="osaka"', 'alertname="HandcheckTargetDown"']
      receiver: osaka-oncall
receivers:
  - name: fallback
  - name: osaka-oncall
    webhook_configs:
      - url: ${notifications.url}
        send_resolved: true
`,
    );
  });
  afterAll(async () => {
    await alertmanager?.stop();
    await notifications?.close();
    await appliance?.stop();
    tmp.remove();
  });

  it('a target that goes down is an active alert, routed by its labels; its recovery resolves it by endsAt', async () => {
    const db = join(tmp.dir, 'monitor.db');
    const document = {
      db,
      targets: [{ name: 'pump-1', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60, labels: { site: 'osaka', line: '2' } }],
      alerts: { alertmanager: { url: alertmanager.url, labels: { severity: 'page' } }, externalUrl: 'http://monitor.example:9600' },
    };
    const monitor = startMonitor(document);
    try {
      await reach(monitor, 'pump-1', 'up');
      const notified = notifications.next((n) => (n as unknown as Notification).status === 'firing');
      appliance.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
      const down = await reach(monitor, 'pump-1', 'reset');
      await monitor.alerter.idle();
      const [alert] = await alertmanager.alerts();
      expect(alert).toMatchObject({
        labels: { alertname: 'HandcheckTargetDown', target: 'pump-1', site: 'osaka', line: '2', severity: 'page' },
        annotations: { summary: 'pump-1 is reset', state: 'reset', address: `127.0.0.1:${port}`, description: down!.reason },
        startsAt: new Date(down!.at).toISOString(),
        generatorURL: 'http://monitor.example:9600/#target=pump-1',
        status: { state: 'active' },
      });
      // Alertmanager routed it by site to the on-call receiver.
      expect((await notified).body).toMatchObject({ receiver: 'osaka-oncall', status: 'firing', alerts: [{ status: 'firing', labels: { target: 'pump-1' } }] });

      const resolvedNotice = notifications.next((n) => (n as unknown as Notification).status === 'resolved');
      appliance.board.sim!.faults.clearAll();
      await reach(monitor, 'pump-1', 'up');
      await monitor.alerter.idle();
      expect(await alertmanager.alerts()).toEqual([]);
      expect((await resolvedNotice).body).toMatchObject({ receiver: 'osaka-oncall', status: 'resolved', alerts: [{ status: 'resolved', labels: { target: 'pump-1' } }] });
    } finally {
      appliance.board.sim!.faults.clearAll();
      await monitor.close();
    }
  });

  it('a monitor restarted while the target is down posts the same alert again, and its recovery resolves it', async () => {
    const db = join(tmp.dir, 'restart.db');
    const target = { name: 'pump-2', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60 };
    const first = startMonitor({ db, targets: [target] });
    let down: { at: number } | undefined;
    try {
      await reach(first, 'pump-2', 'up');
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      down = await reach(first, 'pump-2', 'reset');
    } finally {
      await first.close();
    }
    // The monitor that saw it go down had no Alertmanager; the restarted one has.
    const second = startMonitor({ db, targets: [target], alerts: { alertmanager: { url: alertmanager.url } } });
    try {
      await until(async () => (await alertmanager.alerts()).some((a) => a.labels.target === 'pump-2'), 'the alert in Alertmanager');
      const alert = (await alertmanager.alerts()).find((a) => a.labels.target === 'pump-2');
      expect(alert).toMatchObject({ labels: { alertname: 'HandcheckTargetDown', target: 'pump-2' }, startsAt: new Date(down!.at).toISOString(), status: { state: 'active' } });
      appliance.board.sim!.faults.clearAll();
      await reach(second, 'pump-2', 'up');
      await second.alerter.idle();
      expect((await alertmanager.alerts()).filter((a) => a.labels.target === 'pump-2')).toEqual([]);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await second.close();
    }
  });

  it('a reboot loop is an alert of its own in Alertmanager, the down episode of its reboots resolved; the loop ending resolves it', { timeout: 300_000 }, async () => {
    const state = tempDir();
    // Its own appliance: a one-second watchdog on the board's clock in real time, and a query port.
    const config = applianceConfig({ recheckMs: 0 }, (c) => withQueryPort({ ...c, watchdog: { ...c.watchdog!, timeoutS: 1, resetLoopCount: 10, resetLoopWindowS: 3600 } }));
    const looping = await startAppliance(config, { stateDir: state.dir });
    const queryPort = looping.appliance.services.find((s) => s.config.id === 'modbus-query')!.port;
    const monitor = startMonitor({
      targets: [{ name: 'pump-3', address: `127.0.0.1:${looping.port}`, intervalMs: 100, graceMs: 60, modbus: { port: queryPort, timeoutMs: 5000 }, rebootLoop: { count: 2, windowMs: twoRebootsWindowMs } }],
      alerts: { alertmanager: { url: alertmanager.url } },
    });
    const active = async (): Promise<GettableAlert[]> => (await alertmanager.alerts()).filter((a) => a.labels.target === 'pump-3' && a.labels.alertname !== 'HandcheckTargetRebooted');
    try {
      const loop = await loopByTwoReboots(monitor, 'pump-3', looping.appliance);
      await monitor.alerter.idle();
      expect(await active()).toEqual([
        expect.objectContaining({
          labels: { alertname: 'HandcheckTargetRebootLoop', target: 'pump-3' },
          annotations: expect.objectContaining({ summary: 'pump-3 is in a reboot loop', state: 'reboot-loop', description: loop.reason }) as object,
          startsAt: new Date(loop.at).toISOString(),
          status: expect.objectContaining({ state: 'active' }) as object,
        }),
      ]);
      // The reboots seen are HandcheckTargetRebooted. Alertmanager tells alerts apart by their labels, the
      // same for every reboot of a target: one alert, active until an hour after the last reboot seen, which describes it.
      const last = monitor.history
        .forTarget('pump-3')
        .filter((t) => t.reason.startsWith('rebooted'))
        .sort((x, y) => x.at - y.at)
        .at(-1)!;
      const rebooted = (await alertmanager.alerts()).filter((a) => a.labels.alertname === 'HandcheckTargetRebooted');
      expect(rebooted).toEqual([
        expect.objectContaining({
          labels: { alertname: 'HandcheckTargetRebooted', target: 'pump-3' },
          annotations: expect.objectContaining({ summary: expect.stringMatching(/^pump-3 rebooted( \d+ times)?$/) as string, description: last.reason }) as object,
          status: expect.objectContaining({ state: 'active' }) as object,
        }),
      ]);
      expect(Date.parse(rebooted[0]!.endsAt)).toBe(last.at + 3_600_000);
      await until(() => monitor.target('pump-3')!.state === 'up', 'the loop over: a window with no reboot', twoRebootsWindowMs + 60_000);
      await monitor.alerter.idle();
      expect(await active()).toEqual([]);
    } finally {
      await monitor.close();
      await looping.appliance.stop();
      state.remove();
    }
  });
});

describe("Alertmanager's hold on a firing alert", () => {
  it('a firing alert ends four resendMs after its post (default 60 s), a resolved one at the recovery', () => {
    expect(resolveConfig({ targets: [], alerts: { alertmanager: { url: 'http://alertmanager:9093' } } }, 'test').alerts.alertmanager!.resendMs).toBe(60_000);
    const config = resolveConfig({ targets: [], alerts: { alertmanager: { url: 'http://alertmanager:9093', resendMs: 5000 } } }, 'test').alerts.alertmanager!;
    // The sink's clock is the test's: the post is at `now`.
    const now = Date.parse('2026-11-30T10:02:20.000Z');
    const sink = new AlertmanagerSink(config, () => now);
    const firing: Alert = {
      id: 'a1',
      kind: 'down',
      status: 'firing',
      target: 'pump-1',
      host: '10.0.0.21',
      port: 502,
      labels: {},
      from: 'up',
      to: 'reset',
      healthy: false,
      reason: 'RST 3.10 ms after the handshake',
      at: '2026-11-30T10:02:11.408Z',
      startsAt: '2026-11-30T10:02:11.408Z',
    };
    expect(sink.postable(firing)).toMatchObject({ startsAt: firing.startsAt, endsAt: new Date(now + 4 * 5000).toISOString() });
    const resolved: Alert = { ...firing, status: 'resolved', from: 'reset', to: 'up', healthy: true, at: '2026-11-30T10:02:15.000Z', endsAt: '2026-11-30T10:02:15.000Z' };
    expect(sink.postable(resolved)).toMatchObject({ endsAt: resolved.endsAt });
  });

  it('is posted again every resendMs while it fires, the same alert each time', async () => {
    const receiver = await new Receiver().listen();
    const target = createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const monitor = startMonitor({
      targets: [{ name: 'pump-4', address: `127.0.0.1:${(target.address() as AddressInfo).port}`, intervalMs: 100, graceMs: 60 }],
      alerts: { alertmanager: { url: `http://127.0.0.1:${receiver.port}`, resendMs: 1000 } },
    });
    /** The next post of a firing alert to Alertmanager's API. */
    const posted = (): Promise<Record<string, unknown>> =>
      receiver.next((body) => ((body as unknown as Array<{ annotations: { state: string } }>)[0]?.annotations.state ?? 'up') !== 'up', 30_000).then((r) => (r.body as Array<Record<string, unknown>>)[0]!);
    try {
      await reach(monitor, 'pump-4', 'up');
      const first = posted();
      await new Promise<void>((resolve) => target.close(() => resolve()));
      await reach(monitor, 'pump-4', 'refused');
      const alert = await first;
      const again = await posted();
      // The same alert, its end pushed on by the later post.
      expect({ ...again, endsAt: alert.endsAt }).toEqual(alert);
      expect(Date.parse(again.endsAt as string)).toBeGreaterThan(Date.parse(alert.endsAt as string));
    } finally {
      await monitor.close();
      await receiver.close();
      target.close();
    }
  });
});
