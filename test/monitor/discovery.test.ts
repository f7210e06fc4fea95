/**
 * Targets from Prometheus's service discovery formats: a file_sd JSON file followed as it changes, an
 * http_sd URL fetched on an interval; a bad update keeps the last good targets and is counted; a
 * target that leaves stops being probed and loses its series. Discovered targets carry their own
 * settings in `__handcheck_*` labels, the Modbus question among them: a sim appliance found through a
 * file is asked why it fails. (YAML files: discovery-yaml.test.ts.)
 */
import { renameSync, writeFileSync } from 'node:fs';
import { type Server as HttpServer, createServer as createHttpServer } from 'node:http';
import { type AddressInfo, type Server, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import { resolveConfig } from '../../monitor/config.js';
import { type DiscoveryDefaults, TargetSources, maxDiscoveryBytes, targetsFromGroups } from '../../monitor/discovery.js';
import type { Monitor } from '../../monitor/monitor.js';
import { applianceConfig, startAppliance } from '../firmware/helpers.js';
import { silent } from '../helpers/log.js';
import { until } from '../helpers/wait.js';
import { reach, startMonitor, tempDir, withQueryPort } from './helpers.js';

const defaults: DiscoveryDefaults = { settings: resolveConfig({ targets: [] }, 't').defaults, labels: { site: 'osaka' } };

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

  it('carry the Modbus question in __handcheck_modbus_* labels, which are consumed, never exported; the config default applies unless they say otherwise', () => {
    const groups = [
      { targets: ['10.0.0.1:502'], labels: { __handcheck_modbus_port: '1503', rack: '1' } },
      { targets: ['10.0.0.2:502'], labels: { __handcheck_modbus_port: '1503', __handcheck_modbus_unit_id: '0', __handcheck_modbus_timeout_ms: '250' } },
      { targets: ['10.0.0.3:502'], labels: { __handcheck_modbus: 'true' } },
      { targets: ['10.0.0.4:502'], labels: { __handcheck_modbus: 'false' } },
      { targets: ['10.0.0.5:502'], labels: { __handcheck_modbus_port: '' } },
    ];
    const asked = (modbus?: DiscoveryDefaults['modbus']): unknown[] => targetsFromGroups(groups, 'sd.json', { ...defaults, modbus }).map((t) => t.modbus);
    expect(asked()).toEqual([
      { port: 1503, unitId: 1, timeoutMs: 1000 },
      { port: 1503, unitId: 0, timeoutMs: 250 },
      { port: undefined, unitId: 1, timeoutMs: 1000 },
      undefined,
      undefined,
    ]);
    expect(asked({ port: 1600, timeoutMs: 2000 })).toEqual([
      { port: 1503, unitId: 1, timeoutMs: 2000 },
      { port: 1503, unitId: 0, timeoutMs: 250 },
      { port: 1600, unitId: 1, timeoutMs: 2000 },
      undefined,
      { port: 1600, unitId: 1, timeoutMs: 2000 },
    ]);
    expect(targetsFromGroups(groups, 'sd.json', defaults).map((t) => t.labels)).toEqual([{ site: 'osaka', rack: '1' }, { site: 'osaka' }, { site: 'osaka' }, { site: 'osaka' }, { site: 'osaka' }]);
  });

  it('name a bad Modbus label, or an unknown __handcheck_ one, by its path and what is wrong', () => {
    let error: Error & { issues?: Array<{ path: string; message: string }> } = new Error();
    try {
      targetsFromGroups(
        [
          { targets: ['10.0.0.1:502'], labels: { __handcheck_modbus_port: '70000', __handcheck_modbus_unit_id: '256', __handcheck_modbus_timeout_ms: '1.5' } },
          { targets: ['10.0.0.2:502'], labels: { __handcheck_modbus: 'yes', __handcheck_modbus_prot: '1503' } },
          { targets: ['10.0.0.3:502'], labels: { __handcheck_modbus: 'false', __handcheck_modbus_port: '1503' } },
        ],
        'sd.json',
        defaults,
      );
    } catch (err) {
      error = err as typeof error;
    }
    expect(error.issues?.map((i) => `${i.path}: ${i.message}`)).toEqual([
      '/0/labels/__handcheck_modbus_port: "70000" is not an integer in 1-65535',
      '/0/labels/__handcheck_modbus_unit_id: "256" is not an integer in 0-255',
      '/0/labels/__handcheck_modbus_timeout_ms: "1.5" is not an integer in 1-60000',
      '/1/labels/__handcheck_modbus_prot: unknown label "__handcheck_modbus_prot" (known: __handcheck_name, __handcheck_mode, __handcheck_modbus, __handcheck_modbus_port, __handcheck_modbus_unit_id, __handcheck_modbus_timeout_ms)',
      '/1/labels/__handcheck_modbus: "yes" is not true or false',
      '/2/labels/__handcheck_modbus: "false" turns asking off, but __handcheck_modbus_port is set',
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

  it('refuses an http_sd answer past the size bound, keeping the targets', async () => {
    served = JSON.stringify([{ targets: [`127.0.0.1:${ports[0]}`] }]);
    await until(() => names().includes(`127.0.0.1:${ports[0]}`), 'the served target');
    failures = [];
    served = `[${' '.repeat(maxDiscoveryBytes)}]`;
    await until(() => failures.some((source) => source.startsWith('http:')), 'the large answer to be refused');
    expect(names()).toContain(`127.0.0.1:${ports[0]}`);
    served = '[]';
  });
});

describe('a discovered appliance asked why', () => {
  const tmp = tempDir();
  let appliance: Appliance;
  let port: number;
  let queryPort: number;
  beforeAll(async () => {
    ({ appliance, port } = await startAppliance(applianceConfig({ recheckMs: 100 }, withQueryPort)));
    queryPort = appliance.services.find((s) => s.config.id === 'modbus-query')!.port;
  });
  afterAll(async () => {
    await appliance.stop();
    tmp.remove();
  });

  it("is asked on the port its file's labels name, and its transition says which part failed and why", async () => {
    const file = join(tmp.dir, 'appliances.yml');
    writeFileSync(file, `- targets: ['127.0.0.1:${port}']\n  labels:\n    __handcheck_name: pump\n    __handcheck_modbus_port: ${queryPort}\n    __handcheck_modbus_timeout_ms: 5000\n    line: 1\n`);
    const config = resolveConfig({ defaults: { intervalMs: 100, graceMs: 60 }, targets: [], discovery: { files: [file] } }, 'test');
    const monitor = startMonitor({ defaults: { intervalMs: 100, graceMs: 60 }, targets: [] });
    const sources = new TargetSources({
      targets: [],
      discovery: config.discovery,
      defaults: { settings: config.defaults, labels: {}, modbus: config.defaultModbus },
      apply: (targets) => monitor.setTargets(targets),
      logger: silent,
    });
    try {
      await sources.start();
      expect(monitor.targets.map((t) => [t.name, t.labels, t.modbus])).toEqual([['pump', { line: '1' }, { port: queryPort, unitId: 1, timeoutMs: 5000 }]]);
      // A loaded machine can miss a first diagnosis's deadlines; the board is healthy once they are met.
      await reach(monitor, 'pump', 'up', 30_000);
      appliance.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
      const down = (await reach(monitor, 'pump', 'reset'))!;
      expect(down.cause).toMatch(/(^| \| )uplink-sfp failed: [^|]*loss of signal/);
      expect(down.reason).toMatch(/^RST .*; the appliance says: .*uplink-sfp failed/);
      expect(monitor.history.forTarget('pump').at(-1)!.reason).toBe(down.reason);
      expect(monitor.metrics.renderTargets()).not.toContain('__handcheck');
    } finally {
      appliance.board.sim!.faults.clearAll();
      sources.close();
      await monitor.close();
    }
  });
});
