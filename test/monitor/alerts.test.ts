/**
 * Alerts on transitions of a target on the sim firmware: a webhook POST retried until it is taken, a
 * command with the transition on stdin and in its environment, and a webhook that is down - refusing
 * or never answering - which must not slow the probes down.
 */
import { existsSync, readFileSync } from 'node:fs';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import type { AlertEvent } from '../../monitor/alerts.js';
import type { Monitor } from '../../monitor/monitor.js';
import { applianceConfig, startAppliance } from '../firmware/helpers.js';
import { until } from '../helpers/wait.js';
import { nextResults, nextTransition, reach, startMonitor, tempDir } from './helpers.js';

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => resolve(text));
  });
}

function listen(server: Server | ReturnType<typeof createTcpServer>): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

async function metric(monitor: Monitor, line: RegExp): Promise<number> {
  const { body: text } = await monitor.metrics.render();
  const match = text.split('\n').find((l) => line.test(l));
  return match ? Number(match.split(' ').pop()) : 0;
}

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

  it('POSTs each health change to the webhook, retrying until it answers 2xx; no alert for a healthy start', async () => {
    const received: AlertEvent[] = [];
    let answers = [500, 503];
    const server = createServer(async (req, res) => {
      received.push(JSON.parse(await body(req)) as AlertEvent);
      res.writeHead(answers.shift() ?? 200).end();
    });
    const webhookPort = await listen(server);
    const monitor = startMonitor({
      targets: [{ name: 'pump-1', address: `127.0.0.1:${port}`, intervalMs: 100, graceMs: 60, labels: { site: 'osaka' } }],
      alerts: { webhook: { url: `http://127.0.0.1:${webhookPort}/hook` }, retries: 3, backoffMs: 20 },
    });
    try {
      await reach(monitor, 'pump-1', 'up');
      await nextResults(monitor, 'pump-1', 2);
      await monitor.alerter.idle();
      expect(received).toEqual([]);
      appliance.board.sim!.faults.inject({ target: 'board-temp', kind: 'nack' });
      await reach(monitor, 'pump-1', 'reset');
      await monitor.alerter.idle();
      expect(received).toHaveLength(3);
      expect(received[2]).toMatchObject({ target: 'pump-1', host: '127.0.0.1', port, labels: { site: 'osaka' }, from: 'up', to: 'reset', healthy: false });
      expect(await metric(monitor, /^handcheck_monitor_alerts_total\{sink="webhook",outcome="retried"\}/)).toBe(2);
      expect(await metric(monitor, /^handcheck_monitor_alerts_total\{sink="webhook",outcome="delivered"\}/)).toBe(1);
      appliance.board.sim!.faults.clearAll();
      await reach(monitor, 'pump-1', 'up');
      await monitor.alerter.idle();
      expect(received.slice(3)).toMatchObject([{ from: 'reset', to: 'up', healthy: true }]);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await monitor.close();
      server.close();
    }
  });

  it('runs the command with the transition on stdin and in HANDCHECK_* variables, retrying a failure', async () => {
    const dir = tmp.dir;
    const command = `echo try >> "${dir}/attempts"; [ "$(wc -l < "${dir}/attempts")" -ge 2 ] || exit 3; cat > "${dir}/alert.json"; echo "$HANDCHECK_TARGET $HANDCHECK_ADDRESS $HANDCHECK_FROM $HANDCHECK_TO $HANDCHECK_HEALTHY" > "${dir}/env"`;
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
      expect(JSON.parse(readFileSync(join(dir, 'alert.json'), 'utf8'))).toMatchObject({ target: 'pump-2', from: 'up', to: 'reset', healthy: false });
      expect(readFileSync(join(dir, 'env'), 'utf8')).toBe(`pump-2 127.0.0.1:${port} up reset 0\n`);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await monitor.close();
    }
  });

  for (const how of ['refuses connections', 'accepts and never answers'] as const) {
    it(`a webhook that ${how} does not stall probing`, async () => {
      const silentServer = createTcpServer((socket) => socket.on('error', () => undefined));
      let webhookPort: number;
      if (how === 'accepts and never answers') {
        webhookPort = await listen(silentServer);
      } else {
        // A port that was just free: nothing listens there.
        webhookPort = await listen(silentServer);
        await new Promise((resolve) => silentServer.close(resolve));
      }
      const monitor = startMonitor({
        targets: [{ name: 'pump-3', address: `127.0.0.1:${port}`, intervalMs: 50, graceMs: 30 }],
        alerts: { webhook: { url: `http://127.0.0.1:${webhookPort}/hook`, timeoutMs: 20_000 }, retries: 10, backoffMs: 50 },
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
        // Six alerts wait on a webhook that takes none, and the probes go on meanwhile.
        expect(monitor.alerter.pending().webhook).toBeGreaterThanOrEqual(5);
        expect(await nextResults(monitor, 'pump-3', 10)).toEqual(Array(10).fill('up'));
        expect(monitor.alerter.pending().webhook).toBeGreaterThanOrEqual(5);
        if (how === 'refuses connections') {
          await until(async () => (await metric(monitor, /^handcheck_monitor_alerts_total\{sink="webhook",outcome="retried"\}/)) >= 3, 'three retries');
        }
        // Closing gives up on the webhook rather than waiting out its 20 s timeout.
        const closing = Date.now();
        await monitor.close();
        expect(Date.now() - closing).toBeLessThan(10_000);
      } finally {
        appliance.board.sim!.faults.clearAll();
        await monitor.close();
        silentServer.close();
      }
    });
  }

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
      expect(await metric(monitor, /^handcheck_monitor_alerts_total\{sink="command",outcome="failed"\}/)).toBe(1);
      expect(existsSync(join(tmp.dir, 'missing-script'))).toBe(false);
    } finally {
      appliance.board.sim!.faults.clearAll();
      await monitor.close();
    }
  });
});
