/**
 * Targets from Prometheus's service discovery formats: a file_sd JSON file followed as it changes, an
 * http_sd URL fetched on an interval; a bad update keeps the last good targets and is counted; a
 * target that leaves stops being probed and loses its series.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { type Server as HttpServer, createServer as createHttpServer } from 'node:http';
import { type AddressInfo, type Server, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../monitor/config.js';
import { TargetSources, targetsFromGroups } from '../../monitor/discovery.js';
import type { Monitor } from '../../monitor/monitor.js';
import { silent } from '../helpers/log.js';
import { until } from '../helpers/wait.js';
import { reach, startMonitor, tempDir } from './helpers.js';

const defaults = { settings: resolveConfig({ targets: [] }, 't').defaults, labels: { site: 'osaka' } };

describe('target groups (Prometheus SD format)', () => {
  it('become targets named by their address (or __handcheck_name), with the group labels over the defaults, __ labels dropped', () => {
    const targets = targetsFromGroups(
      [
        { targets: ['10.0.0.1:502', '[2001:db8::1]:502'], labels: { rack: '1', __meta_filepath: '/x' } },
        { targets: ['10.0.0.2:502'], labels: { site: 'kyoto', __handcheck_name: 'pump-2', __handcheck_mode: 'hold' } },
      ],
      'sd.json',
      defaults,
    );
    expect(targets.map((t) => `${t.name} ${t.host} ${t.port} ${t.mode} ${JSON.stringify(t.labels)}`)).toEqual([
      '10.0.0.1:502 10.0.0.1 502 probe {"site":"osaka","rack":"1"}',
      '[2001:db8::1]:502 2001:db8::1 502 probe {"site":"osaka","rack":"1"}',
      'pump-2 10.0.0.2 502 hold {"site":"kyoto"}',
    ]);
  });

  it('name every problem of a bad document by its path, with ERR_MONITOR_DISCOVERY', () => {
    expect(() => targetsFromGroups({ targets: [] }, 'sd.json', defaults)).toThrow(/^sd\.json: \/: must be array/);
    let error: Error & { code?: string; issues?: Array<{ path: string }> } = new Error();
    try {
      targetsFromGroups([{ targets: ['nohost', 'a:1', 'a:1'], labels: { job: 'x', __handcheck_mode: 'fast' } }], 'sd.json', defaults);
    } catch (err) {
      error = err as typeof error;
    }
    expect(error.code).toBe('ERR_MONITOR_DISCOVERY');
    expect(error.issues?.map((i) => i.path)).toEqual(['/0/labels/job', '/0/labels/__handcheck_mode', '/0/targets/0', '/0/targets/2']);
  });
});

describe('discovery sources feeding a monitor', () => {
  const tmp = tempDir();
  const listeners: Server[] = [];
  let ports: number[];
  let monitor: Monitor;
  let sources: TargetSources;
  let served = '[]';
  let sd: HttpServer;
  let failures: string[] = [];
  const file = join(tmp.dir, 'targets.json');
  const write = (groups: unknown): void => {
    // Atomically, as a config management tool writes it.
    writeFileSync(`${file}.tmp`, typeof groups === 'string' ? groups : JSON.stringify(groups));
    renameSync(`${file}.tmp`, file);
  };
  const names = (): string[] => monitor.targets.map((t) => t.name).sort();

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      const server = createServer((socket) => socket.on('error', () => undefined));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      listeners.push(server);
    }
    ports = listeners.map((s) => (s.address() as AddressInfo).port);
    sd = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(served));
    await new Promise<void>((resolve) => sd.listen(0, '127.0.0.1', resolve));
    write([{ targets: [`127.0.0.1:${ports[0]}`], labels: { __handcheck_name: 'from-file' } }]);
    const config = resolveConfig({ defaults: { intervalMs: 100, graceMs: 20 }, targets: [{ name: 'own', address: `127.0.0.1:${ports[2]}` }] }, 'test');
    monitor = startMonitor({ defaults: { intervalMs: 100, graceMs: 20 }, targets: [{ name: 'own', address: `127.0.0.1:${ports[2]}` }] });
    sources = new TargetSources({
      targets: config.targets,
      discovery: { files: [file], fileRefreshMs: 3_600_000, http: [{ url: `http://127.0.0.1:${(sd.address() as AddressInfo).port}/targets`, refreshMs: 50 }] },
      defaults: { settings: config.defaults, labels: {} },
      apply: (targets) => monitor.setTargets(targets),
      onFailure: (source) => {
        failures.push(source);
        monitor.metrics.discoveryFailure(source);
      },
      logger: silent,
    });
    await sources.start();
  });
  afterAll(async () => {
    sources?.close();
    await monitor?.close();
    await new Promise((resolve) => sd?.close(resolve));
    for (const s of listeners) await new Promise((resolve) => s.close(resolve));
    tmp.remove();
  });

  it("starts with the config's targets and the file's, and probes them", async () => {
    expect(names()).toEqual(['from-file', 'own']);
    await reach(monitor, 'from-file', 'up');
  });

  it('follows the file as it changes: a new target is probed, one that left stops and loses its series', async () => {
    write([{ targets: [`127.0.0.1:${ports[1]}`], labels: { __handcheck_name: 'renamed', rack: '7' } }]);
    await until(() => names().join() === 'own,renamed', 'the file change to reach the monitor');
    await reach(monitor, 'renamed', 'up');
    expect(monitor.target('from-file')).toBeUndefined();
    const metrics = monitor.metrics.renderTargets();
    expect(metrics).toContain('handcheck_monitor_target_up{target="renamed",rack="7"} 1');
    expect(metrics).not.toContain('target="from-file"');
  });

  it('keeps the last good targets when the file turns invalid, counting the failure', async () => {
    failures = [];
    write('{"not": "a list"');
    await until(() => failures.includes(file), 'the bad file to be read');
    expect(names()).toEqual(['own', 'renamed']);
    expect((await monitor.metrics.render()).body).toMatch(new RegExp(`handcheck_monitor_discovery_failures_total\\{source="${file.replace(/[/.]/g, '\\$&')}"\\} [1-9]`));
  });

  it('fetches the http_sd URL on its interval', async () => {
    served = JSON.stringify([{ targets: [`127.0.0.1:${ports[0]}`], labels: { site: 'kyoto' } }]);
    await until(() => names().includes(`127.0.0.1:${ports[0]}`), 'the served targets to reach the monitor');
    await reach(monitor, `127.0.0.1:${ports[0]}`, 'up');
    expect(monitor.target(`127.0.0.1:${ports[0]}`)?.labels).toEqual({ site: 'kyoto' });
    served = '[]';
    await until(() => !names().includes(`127.0.0.1:${ports[0]}`), 'the target to leave with the next fetch');
  });
});
