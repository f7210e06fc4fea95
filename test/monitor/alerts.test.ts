/**
 * Alerts on transitions of targets on the sim firmware, over real sockets: a webhook POST retried
 * until it is taken, with one id per episode and a `resolved` update; a command with the alert on
 * stdin and in its environment; receivers that refuse, fail or hang, which must hold up neither the
 * probes, nor another target's alerts, nor another sink; headers from a file or a variable; past
 * queueLimit the oldest dropped; closing with FIN on held connections and time for an alert in flight;
 * and what is owed surviving a restart of the monitor.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, type Server, createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import type { Alert } from '../../monitor/alerts.js';
import { MonitorConfigError } from '../../monitor/errors.js';
import type { Monitor } from '../../monitor/monitor.js';
import { applianceConfig, startAppliance } from '../firmware/helpers.js';
import { logSink } from '../helpers/log.js';
import { until } from '../helpers/wait.js';
import { Receiver, nextResults, nextTransition, reach, startMonitor, tempDir } from './helpers.js';

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

async function metric(monitor: Monitor, line: RegExp): Promise<number> {
  const { body: text } = await monitor.metrics.render();
  const match = text.split('\n').find((l) => line.test(l));
  return match ? Number(match.split(' ').pop()) : 0;
}

const outcome = (sink: string, what: string): RegExp => new RegExp(`^handcheck_monitor_alerts_total\\{sink="${sink}",outcome="${what}"\\}`);

/** A TCP server the test opens and closes: a target that is up while it listens and refused after. */
async function switchableTarget(): Promise<{ port: number; stop: () => Promise<void> }> {
  const server = createTcpServer((socket) => socket.on('error', () => undefined));
  const port = await listen(server);
  return { port, stop: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** The variables docs/monitor.md says the alert command gets, as its `command` item lists them. */
const commandVariables = [
  .../^- `command` \(`--alert-command CMD`\)[\s\S]*?(?=^- )/m.exec(readFileSync(new URL('../../docs/monitor.md', import.meta.url), 'utf8'))![0].matchAll(/`(HANDCHECK_[A-Z_]+)`/g),
].map((match) => match[1]!);

describe('alerts', () => {
  let appliance: Appliance;
  let port: number;
  const tmp = tempDir();
  beforeAll(async () => {
    ({ appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0 })));
  });
  afterAll(async () => {
    await appliance.stop();
    tmp.remove();
  });

  it('POSTs each health change to the webhook, retrying until it answers 2xx, one id per episode; no alert for a healthy start', async () => {
    const receiver = await new Receiver().listen();
    let answers = [500, 503];
    receiver.answer = () => answers.shift() ?? 200;
    const monitor = startMonitor({
      targets: [{ name: 'pump-1', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60, labels: { site: 'osaka' } }],
      alerts: { webhook: { url: receiver.url }, retries: 3, backoffMs: 20 },
    });
    try {
      await reach(monitor, 'pump-1', 'up');
      await nextResults(monitor, 'pump-1', 2);
      await monitor.alerter.idle();
      expect(receiver.alerts).toEqual([]);
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      const down = await reach(monitor, 'pump-1', 'reset');
      await monitor.alerter.idle();
      expect(receiver.alerts).toHaveLength(3);
      const [first] = receiver.alerts;
      // The retries are the same alert: a receiver deduplicates on the id.
      expect(new Set(receiver.alerts.map((a) => a.id))).toEqual(new Set([first!.id]));
      expect(receiver.alerts[2]).toMatchObject({ status: 'firing', target: 'pump-1', host: '127.0.0.1', port, labels: { site: 'osaka' }, from: 'up', to: 'reset', healthy: false });
      expect(receiver.alerts[2]!.startsAt).toBe(new Date(down!.at).toISOString());
      expect(await metric(monitor, outcome('webhook', 'retried'))).toBe(2);
      expect(await metric(monitor, outcome('webhook', 'delivered'))).toBe(1);
      appliance.board.sim!.faults.clearAll();
      const up = await reach(monitor, 'pump-1', 'up');
      await monitor.alerter.idle();
      expect(receiver.alerts.slice(3)).toMatchObject([
        { id: first!.id, status: 'resolved', from: 'reset', to: 'up', healthy: true, startsAt: first!.startsAt, endsAt: new Date(up!.at).toISOString() },
      ]);
      // The next episode is a new alert.
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      await reach(monitor, 'pump-1', 'reset');
      await monitor.alerter.idle();
      expect(receiver.alerts.at(-1)).toMatchObject({ status: 'firing' });
      expect(receiver.alerts.at(-1)!.id).not.toBe(first!.id);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await monitor.close();
      await receiver.close();
    }
  });

  it('runs the command with the alert on stdin and in HANDCHECK_* variables, retrying a failure', async () => {
    const dir = tmp.dir;
    const command = `echo try >> "${dir}/attempts"; [ "$(wc -l < "${dir}/attempts")" -ge 2 ] || exit 3; cat > "${dir}/alert.json"; printf '%s\\n' ${commandVariables.map((v) => `"$${v}"`).join(' ')} > "${dir}/env"`;
    const environment = (): Record<string, string> => {
      const values = readFileSync(join(dir, 'env'), 'utf8').split('\n');
      return Object.fromEntries(commandVariables.map((name, i) => [name, values[i]!]));
    };
    /** What docs/monitor.md says each variable holds, for this alert. */
    const expected = (alert: Alert): Record<string, string> => ({
      HANDCHECK_ALERT_ID: alert.id,
      HANDCHECK_KIND: alert.kind,
      HANDCHECK_STATUS: alert.status,
      HANDCHECK_TARGET: 'pump-2',
      HANDCHECK_ADDRESS: `127.0.0.1:${port}`,
      HANDCHECK_FROM: alert.from,
      HANDCHECK_TO: alert.to,
      HANDCHECK_HEALTHY: alert.healthy ? '1' : '0',
      HANDCHECK_REASON: alert.reason,
      // The target is not asked why: empty, not unset.
      HANDCHECK_CAUSE: '',
      HANDCHECK_AT: alert.at,
      HANDCHECK_STARTS_AT: alert.startsAt,
      HANDCHECK_ENDS_AT: alert.endsAt ?? '',
    });
    const monitor = startMonitor({
      targets: [{ name: 'pump-2', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60 }],
      alerts: { command, retries: 2, backoffMs: 20 },
    });
    try {
      await reach(monitor, 'pump-2', 'up');
      appliance.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
      await reach(monitor, 'pump-2', 'reset');
      await monitor.alerter.idle();
      expect(readFileSync(join(dir, 'attempts'), 'utf8')).toBe('try\ntry\n');
      const alert = JSON.parse(readFileSync(join(dir, 'alert.json'), 'utf8')) as Alert;
      expect(alert).toMatchObject({ kind: 'down', target: 'pump-2', from: 'up', to: 'reset', healthy: false, status: 'firing' });
      expect(alert.endsAt).toBeUndefined();
      expect(environment()).toEqual(expected(alert));

      appliance.board.sim!.faults.clearAll();
      await reach(monitor, 'pump-2', 'up');
      await monitor.alerter.idle();
      const resolved = JSON.parse(readFileSync(join(dir, 'alert.json'), 'utf8')) as Alert;
      expect(resolved).toMatchObject({ id: alert.id, kind: 'down', status: 'resolved', healthy: true, endsAt: expect.any(String) as string });
      expect(environment()).toEqual(expected(resolved));
    } finally {
      appliance.board.sim!.faults.clearAll();
      await monitor.close();
    }
  });

  for (const how of ['refuses connections', 'accepts and never answers'] as const) {
    it(`a webhook that ${how} does not stall probing, and closing abandons what is in flight`, async () => {
      // Reads (so it sees the monitor's FIN) and never answers.
      const silentServer = createTcpServer((socket) => socket.on('error', () => undefined).resume());
      const connections: Array<Promise<void>> = [];
      silentServer.on('connection', (socket) => connections.push(new Promise((resolve) => socket.once('close', () => resolve()))));
      const webhookPort = await listen(silentServer);
      // A port that was just free: nothing listens there.
      if (how === 'refuses connections') await new Promise((resolve) => silentServer.close(resolve));
      const monitor = startMonitor({
        targets: [{ name: 'pump-3', address: `127.0.0.1:${port}`, intervalMs: 50, graceMs: 30 }],
        alerts: { webhook: { url: `http://127.0.0.1:${webhookPort}/hook`, timeoutMs: 600_000 }, retries: 10, backoffMs: 50 },
      });
      try {
        await reach(monitor, 'pump-3', 'up');
        for (let flap = 0; flap < 3; flap++) {
          const down = nextTransition(monitor, 'pump-3', 'reset', 10_000);
          appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
          await down;
          const up = nextTransition(monitor, 'pump-3', 'up', 10_000);
          appliance.board.sim!.faults.clearAll();
          await up;
        }
        // Three episodes, each owed as its newest news (resolved), wait on a webhook that takes none;
        // the probes go on meanwhile.
        expect(monitor.alerter.pending().webhook).toBe(3);
        expect(await nextResults(monitor, 'pump-3', 10)).toEqual(Array(10).fill('up'));
        if (how === 'refuses connections') {
          await until(async () => (await metric(monitor, outcome('webhook', 'retried'))) >= 3, 'three retries');
        } else {
          await until(() => connections.length >= 1, 'the webhook to be connected to');
        }
        // Closing gives up on the webhook rather than waiting out its timeout: the request in flight is
        // abandoned (its connection closed by the monitor).
        await monitor.close();
        await Promise.all(connections);
        expect(monitor.alerter.pending().webhook).toBe(3);
      } finally {
        appliance.board.sim!.faults.clearAll();
        await monitor.close();
        silentServer.close();
      }
    });
  }

  it('a receiver that hangs on one target delays neither another target on the same sink nor another sink', async () => {
    const receiver = await new Receiver().listen();
    receiver.answer = (body) => ((body as Alert).target === 'slow' ? 'hang' : 200);
    const other = await switchableTarget();
    const dir = tmp.dir;
    const monitor = startMonitor({
      targets: [
        { name: 'slow', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60 },
        { name: 'fast', address: `127.0.0.1:${other.port}`, intervalMs: 100, graceMs: 60 },
      ],
      alerts: { webhook: { url: receiver.url, timeoutMs: 600_000 }, command: `cat >> "${dir}/slow-fast.jsonl"`, retries: 1, backoffMs: 20 },
    });
    try {
      await reach(monitor, 'slow', 'up');
      await reach(monitor, 'fast', 'up');
      const slowRequest = receiver.next((a) => a.target === 'slow');
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      await reach(monitor, 'slow', 'reset');
      await slowRequest;
      // The other sink took the alert the webhook is still holding.
      await until(() => existsSync(join(dir, 'slow-fast.jsonl')) && readFileSync(join(dir, 'slow-fast.jsonl'), 'utf8').includes('"slow"'), 'the command to run for slow');
      const fastRequest = receiver.next((a) => a.target === 'fast');
      await other.stop();
      await reach(monitor, 'fast', 'refused');
      expect((await fastRequest).body).toMatchObject({ target: 'fast', status: 'firing', to: 'refused' });
      // slow's request is still unanswered: it held up nothing.
      await until(() => monitor.alerter.pending().webhook === 1, "fast's alert to be taken");
      expect(receiver.requests.filter((r) => (r.body as Alert).target === 'slow')).toHaveLength(1);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await monitor.close();
      await receiver.close();
    }
  });

  it('once the recovery is known, the DOWN alert is never delivered: a hanging attempt is abandoned for the resolution', async () => {
    const receiver = await new Receiver().listen();
    let hang = true;
    receiver.answer = (body) => ((body as Alert).status === 'firing' && hang ? 'hang' : 200);
    const monitor = startMonitor({
      targets: [{ name: 'pump-5', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60 }],
      alerts: { webhook: { url: receiver.url, timeoutMs: 600_000 }, retries: 5, backoffMs: 20 },
    });
    try {
      await reach(monitor, 'pump-5', 'up');
      const firing = receiver.next((a) => a.status === 'firing');
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      await reach(monitor, 'pump-5', 'reset');
      const held = await firing;
      const resolved = receiver.next((a) => a.status === 'resolved');
      appliance.board.sim!.faults.clearAll();
      await reach(monitor, 'pump-5', 'up');
      // The monitor gave up the firing request for the news, and the resolution went out at once.
      await held.abandoned;
      expect((await resolved).body).toMatchObject({ id: (held.body as Alert).id, status: 'resolved', healthy: true });
      hang = false;
      await monitor.alerter.idle();
      const statuses = receiver.alerts.map((a) => a.status);
      expect(statuses.slice(statuses.indexOf('resolved'))).toEqual(['resolved']);
      expect(await metric(monitor, outcome('webhook', 'superseded'))).toBe(1);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await monitor.close();
      await receiver.close();
    }
  });

  it('a DOWN alert still waiting out a backoff when the target recovers goes out as its resolution only', async () => {
    const receiver = await new Receiver().listen();
    let failing = true;
    receiver.answer = () => (failing ? 503 : 200);
    const monitor = startMonitor({
      targets: [{ name: 'pump-6', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60 }],
      // A backoff longer than the test: the retry of the DOWN alert is never due.
      alerts: { webhook: { url: receiver.url }, retries: 5, backoffMs: 3_600_000 },
    });
    try {
      await reach(monitor, 'pump-6', 'up');
      const firing = receiver.next((a) => a.status === 'firing');
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      await reach(monitor, 'pump-6', 'reset');
      const { body } = await firing;
      failing = false;
      appliance.board.sim!.faults.clearAll();
      await reach(monitor, 'pump-6', 'up');
      await monitor.alerter.idle();
      expect(receiver.alerts.map((a) => [a.id, a.status])).toEqual([
        [(body as Alert).id, 'firing'],
        [(body as Alert).id, 'resolved'],
      ]);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await monitor.close();
      await receiver.close();
    }
  });

  it('past queueLimit alerts owed to a sink, the oldest is dropped, logged and counted', async () => {
    const receiver = await new Receiver().listen();
    receiver.answer = () => 503;
    const targets = await Promise.all(['a', 'b', 'c'].map(async (name) => ({ name, ...(await switchableTarget()) })));
    const log = logSink('warn');
    const monitor = startMonitor(
      {
        targets: targets.map((t) => ({ name: t.name, address: `127.0.0.1:${t.port}`, intervalMs: 100, graceMs: 60 })),
        // A backoff longer than the test: every failed alert stays owed, none is retried.
        alerts: { webhook: { url: receiver.url }, retries: 5, backoffMs: 3_600_000, queueLimit: 2 },
      },
      { logger: log.logger },
    );
    try {
      for (const t of targets) await reach(monitor, t.name, 'up');
      // Down one after another, each alert tried (and failed) before the next: a, b, c are owed in that order.
      for (const t of targets) {
        const tried = receiver.next((a) => a.target === t.name);
        await t.stop();
        await reach(monitor, t.name, 'refused');
        await tried;
      }
      expect(await metric(monitor, outcome('webhook', 'dropped'))).toBe(1);
      expect(log.lines().filter((l) => l.msg === 'alert queue full; dropped the oldest alert').map((l) => l.target)).toEqual(['a']);
      expect(monitor.alerter.pending().webhook).toBe(2);
    } finally {
      await monitor.close();
      await receiver.close();
    }
  });

  it('closing closes held connections with FIN and gives an alert in flight its grace to be taken', async () => {
    const receiver = await new Receiver().listen();
    let answer!: (status: number) => void;
    receiver.answer = () => new Promise<number>((resolve) => (answer = resolve));
    const down = await switchableTarget();
    // A held target whose connection tells how it ended: the receiver answers once the monitor closing has sent its FIN.
    const ends: string[] = [];
    const held = createTcpServer((socket) => {
      socket.on('error', (err: NodeJS.ErrnoException) => ends.push(err.code ?? err.message));
      socket.on('end', () => {
        ends.push('FIN');
        answer(200);
        socket.end();
      });
    });
    const heldPort = await listen(held);
    // A grace no loaded machine can outrun (startMonitor gives tests none, and the alert is then
    // abandoned at close): the receiver answers once the FIN has come, so the close waits for that.
    const monitor = startMonitor(
      {
        targets: [
          { name: 'pump-7', address: `127.0.0.1:${down.port}`, intervalMs: 100, graceMs: 60 },
          { name: 'held', address: `127.0.0.1:${heldPort}`, mode: 'hold', intervalMs: 100, graceMs: 60 },
        ],
        alerts: { webhook: { url: receiver.url, timeoutMs: 600_000 } },
      },
      { alertGraceMs: 600_000 },
    );
    try {
      await Promise.all([reach(monitor, 'pump-7', 'up'), reach(monitor, 'held', 'up')]);
      const firing = receiver.next((a) => a.target === 'pump-7' && a.status === 'firing');
      await down.stop();
      await reach(monitor, 'pump-7', 'refused');
      await firing;
      await monitor.close();
      expect(ends).toEqual(['FIN']);
      expect(await metric(monitor, outcome('webhook', 'delivered'))).toBe(1);
      expect(receiver.requests).toHaveLength(1);
    } finally {
      await monitor.close();
      await receiver.close();
      held.close();
    }
  });

  it('sends the configured headers, secrets read from a file or a variable', async () => {
    const receiver = await new Receiver().listen();
    const tokenFile = join(tmp.dir, 'hook-token');
    writeFileSync(tokenFile, 's3cret-from-file\n', { mode: 0o600 });
    process.env.HANDCHECK_TEST_HOOK_KEY = 'key-from-env';
    const monitor = startMonitor({
      targets: [{ name: 'pump-7', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60 }],
      alerts: {
        webhook: {
          url: receiver.url,
          headers: { Authorization: { file: tokenFile, prefix: 'Bearer ' }, 'X-Api-Key': { env: 'HANDCHECK_TEST_HOOK_KEY' }, 'X-Team': 'ops' },
        },
      },
    });
    try {
      await reach(monitor, 'pump-7', 'up');
      const request = receiver.next(() => true);
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      const { headers } = await request;
      expect(headers).toMatchObject({ authorization: 'Bearer s3cret-from-file', 'x-api-key': 'key-from-env', 'x-team': 'ops', 'content-type': 'application/json' });
    } finally {
      appliance.board.sim!.faults.clearAll();
      delete process.env.HANDCHECK_TEST_HOOK_KEY;
      await monitor.close();
      await receiver.close();
    }
  });

  it('a header whose variable is unset or whose file is unreadable is a config error naming the path', () => {
    const target = { address: '127.0.0.1:1' };
    expect(() =>
      startMonitor({
        targets: [target],
        alerts: { webhook: { url: 'http://127.0.0.1:1/', headers: { Authorization: { env: 'HANDCHECK_TEST_UNSET_VARIABLE' }, 'X-Key': { file: join(tmp.dir, 'no-such-file') } } } },
      }),
    ).toThrow(
      expect.objectContaining({
        code: 'ERR_MONITOR_CONFIG',
        issues: [
          { path: '/alerts/webhook/headers/Authorization/env', message: 'the variable HANDCHECK_TEST_UNSET_VARIABLE is not set' },
          { path: '/alerts/webhook/headers/X-Key/file', message: expect.stringMatching(/ENOENT/) },
        ],
      }) as MonitorConfigError,
    );
    expect(() => startMonitor({ targets: [target], alerts: { webhook: { url: 'http://127.0.0.1:1/', headers: { 'Bad Name': 'x', 'X-Ok': 'a\r\nInjected: 1' } } } })).toThrow(/Bad Name|header/);
  });

  it('what is owed survives a restart: an alert no sink took goes out when the monitor starts again', async () => {
    const db = join(tmp.dir, 'owed.db');
    const receiver = await new Receiver().listen();
    receiver.answer = () => 503;
    const document = { db, targets: [{ name: 'pump-8', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60 }], alerts: { webhook: { url: receiver.url }, retries: 0 } };
    const first = startMonitor(document);
    let id: string;
    try {
      await reach(first, 'pump-8', 'up');
      const refused = receiver.next(() => true);
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      await reach(first, 'pump-8', 'reset');
      id = ((await refused).body as Alert).id;
      await until(async () => (await metric(first, outcome('webhook', 'failed'))) === 1, 'the monitor to give up');
    } finally {
      await first.close();
    }
    receiver.answer = () => 200;
    const taken = receiver.next((a) => a.id === id);
    const second = startMonitor(document);
    try {
      expect((await taken).body).toMatchObject({ id, status: 'firing', target: 'pump-8', to: 'reset' });
      await second.alerter.idle();
      const resolved = receiver.next((a) => a.status === 'resolved');
      appliance.board.sim!.faults.clearAll();
      expect((await resolved).body).toMatchObject({ id, status: 'resolved' });
    } finally {
      appliance.board.sim!.faults.clearAll();
      await second.close();
      await receiver.close();
    }
  });

  it('a sink removed from the config forgets what it was owed: added back later, it is not sent', async () => {
    const db = join(tmp.dir, 'removed.db');
    const receiver = await new Receiver().listen();
    receiver.answer = () => 503;
    const target = { name: 'pump-9', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60 };
    // A backoff longer than the test: the webhook stays owed the episode's resolution.
    const withWebhook = { db, targets: [target], alerts: { webhook: { url: receiver.url }, retries: 5, backoffMs: 3_600_000 } };
    const first = startMonitor(withWebhook);
    try {
      await reach(first, 'pump-9', 'up');
      const firing = receiver.next((a) => a.status === 'firing');
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      await reach(first, 'pump-9', 'reset');
      await firing;
      const resolved = receiver.next((a) => a.status === 'resolved');
      appliance.board.sim!.faults.clearAll();
      await reach(first, 'pump-9', 'up');
      await resolved;
      expect(first.alerter.pending().webhook).toBe(1);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await first.close();
    }
    // Started once without the webhook: it forgets what the webhook was owed.
    await startMonitor({ db, targets: [target], alerts: { command: 'true' } }).close();
    receiver.answer = () => 200;
    const sent = receiver.requests.length;
    const third = startMonitor(withWebhook);
    try {
      expect(third.alerter.pending().webhook).toBe(0);
      await third.alerter.idle();
      expect(receiver.requests).toHaveLength(sent);
    } finally {
      await third.close();
      await receiver.close();
    }
  });

  it('a target already down in --db alerts a sink added on restart, once, with the episode it is in', async () => {
    const db = join(tmp.dir, 'new-sink.db');
    const target = { name: 'pump-9', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60 };
    const first = startMonitor({ db, targets: [target] });
    let down: { at: number } | undefined;
    try {
      await reach(first, 'pump-9', 'up');
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      down = await reach(first, 'pump-9', 'reset');
    } finally {
      await first.close();
    }
    const receiver = await new Receiver().listen();
    const document = { db, targets: [target], alerts: { webhook: { url: receiver.url } } };
    const second = startMonitor(document);
    try {
      const { body } = await receiver.next(() => true);
      expect(body).toMatchObject({ status: 'firing', target: 'pump-9', to: 'reset', startsAt: new Date(down!.at).toISOString() });
      await second.alerter.idle();
    } finally {
      await second.close();
    }
    // Started again with the same sink, the monitor knows the sink has heard of it.
    const third = startMonitor(document);
    try {
      await nextResults(third, 'pump-9', 3);
      await third.alerter.idle();
      expect(receiver.alerts).toHaveLength(1);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await third.close();
      await receiver.close();
    }
  });

  it('a command that cannot run is retried and given up, the probes unaffected', async () => {
    const monitor = startMonitor({
      targets: [{ name: 'pump-4', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60 }],
      alerts: { command: `${join(tmp.dir, 'missing-script')} --page`, retries: 1, backoffMs: 10 },
    });
    try {
      await reach(monitor, 'pump-4', 'up');
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      await reach(monitor, 'pump-4', 'reset');
      await monitor.alerter.idle();
      expect(await metric(monitor, outcome('command', 'failed'))).toBe(1);
      expect(existsSync(join(tmp.dir, 'missing-script'))).toBe(false);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await monitor.close();
    }
  });
});
