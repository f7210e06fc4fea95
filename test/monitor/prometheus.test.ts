/**
 * The monitor as Prometheus sees it: `/probe` scraped by a real Prometheus (Debian's package) through
 * the multi-target exporter's relabeling (`__param_target`) and split across two jobs by `hashmod`;
 * the shipped rules file checked and unit-tested by promtool and loaded by that Prometheus; the
 * shipped Grafana dashboard's queries naming only metrics the monitor exports, and each one accepted
 * by the real Prometheus.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, type Server, createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import { FirmwareMetrics } from '../../firmware/metrics.js';
import { type MonitorHttpServer, startMonitorHttp } from '../../monitor/http.js';
import type { Monitor } from '../../monitor/monitor.js';
import { applianceConfig, startAppliance } from '../firmware/helpers.js';
import { silent } from '../helpers/log.js';
import { describeWhen } from '../helpers/requirements.js';
import { until } from '../helpers/wait.js';
import { reach, startMonitor, tempDir } from './helpers.js';
import { freePort } from '../helpers/ports.js';

const ROOT = join(import.meta.dirname, '..', '..');
const RULES = join(ROOT, 'deploy', 'prometheus', 'handcheck-rules.yml');
const RULE_TESTS = join(import.meta.dirname, 'prometheus', 'handcheck-rules.test.yml');
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'handcheck-fleet.json');
const exec = promisify(execFile);
const missing = (tool: string): string | undefined => (existsSync(`/usr/bin/${tool}`) ? undefined : `/usr/bin/${tool} is not installed (Debian package prometheus)`);


/** Prometheus's hashmod: the low 8 bytes of the MD5 of the label value, big-endian, modulo (model/relabel/relabel.go). */
function hashmod(value: string, modulus: number): number {
  return Number(createHash('md5').update(value).digest().readBigUInt64BE(8) % BigInt(modulus));
}

interface Panel {
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Array<{ expr: string; refId: string }>;
}

function dashboardQueries(): Array<{ panel: string; expr: string }> {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; uid: string; title: string };
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
}

/** The dashboard's variables and Grafana's interval macro, as Grafana would substitute them. */
const substitute = (expr: string): string => expr.replace(/\$__rate_interval/g, '1m').replace(/\$job|\$instance/g, '.*');

const promqlWords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/** The metric names a PromQL expression reads: identifiers outside strings, label matchers, ranges and grouping clauses that are not function calls. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(\(?))/g)) {
    if (match[1] === '(' || promqlWords.has(match[0].toLowerCase()) || match[0].startsWith('$')) continue;
    names.push(match[0]);
  }
  return names;
}

/** Every series name the text exposition `body` declares (a histogram's _bucket, _sum and _count too). */
function exportedNames(body: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === 'histogram' || type === 'summary') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

describeWhen(missing('promtool'), 'the shipped Prometheus rules', () => {
  it('pass promtool check rules', async () => {
    const { stdout } = await exec('promtool', ['check', 'rules', RULES]);
    expect(stdout).toContain('SUCCESS: 8 rules found');
  });

  it("pass promtool test rules: a target down for a minute pages, flapping, a silent monitor, failed deliveries, a failing /probe target, a reboot and a reboot loop (the appliance's count and the monitor's state)", async () => {
    const { stdout } = await exec('promtool', ['test', 'rules', RULE_TESTS]);
    expect(stdout).toContain('SUCCESS');
  });
});

describeWhen(missing('prometheus'), 'a real Prometheus scraping the monitor', () => {
  let appliance: Appliance;
  let listener: Server;
  let monitor: Monitor;
  let http: MonitorHttpServer;
  let prometheus: ChildProcess;
  let promUrl: string;
  let monitorAddress: string;
  let probeTargets: string[];
  let deadPort: number;
  let prometheusLog = '';
  const tmp = tempDir();

  const query = async (expr: string): Promise<{ status: string; error?: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }> =>
    (await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`)).json() as never;

  beforeAll(async () => {
    const started = await startAppliance(applianceConfig());
    appliance = started.appliance;
    listener = createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    deadPort = await freePort();
    // The built-in scheduler watches two targets; Prometheus schedules four through /probe.
    monitor = startMonitor({
      defaults: { intervalMs: 200, graceMs: 50 },
      targets: [
        { name: 'pump-1', address: `127.0.0.1:${started.port}`, labels: { site: 'osaka' } },
        { name: 'spare', address: `127.0.0.1:${deadPort}`, labels: { site: 'kyoto' } },
      ],
    });
    await Promise.all([reach(monitor, 'pump-1', 'up'), reach(monitor, 'spare', 'refused')]);
    http = await startMonitorHttp({ monitor, host: '127.0.0.1', port: 0, logger: silent });
    monitorAddress = `127.0.0.1:${http.address.port}`;
    const up = [`127.0.0.1:${started.port}`, `127.0.0.1:${(listener.address() as AddressInfo).port}`, `localhost:${started.port}`];
    // Dead targets (nothing listens on deadPort at any loopback address) until both shards have some.
    probeTargets = [...up];
    for (let n = 1; new Set(probeTargets.map((t) => hashmod(t, 2))).size < 2 || probeTargets.length < up.length + 2; n++) probeTargets.push(`127.0.0.${n}:${deadPort}`);

    const shard = (n: number): string => `
  - job_name: handcheck-probe-${n}
    metrics_path: /probe
    params: { mode: [probe], grace_ms: ['50'] }
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: [${probeTargets.map((t) => `'${t}'`).join(', ')}]
    relabel_configs:
      - source_labels: [__address__]
        modulus: 2
        target_label: __tmp_shard
        action: hashmod
      - source_labels: [__tmp_shard]
        regex: '${n}'
        action: keep
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: '${monitorAddress}'`;
    const config = join(tmp.dir, 'prometheus.yml');
    writeFileSync(
      config,
      `global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
rule_files: ['${RULES}']
scrape_configs:
  - job_name: handcheck-monitor
    static_configs:
      - targets: ['${monitorAddress}']${shard(0)}${shard(1)}
`,
    );
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(tmp.dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    prometheus.stderr!.on('data', (chunk: Buffer) => (prometheusLog += chunk.toString()));
    await until(
      async () => {
        if (prometheus.exitCode !== null) throw new Error(`prometheus exited with ${prometheus.exitCode}: ${prometheusLog}`);
        try {
          const [probes, monitored] = await Promise.all([query('probe_success'), query('handcheck_monitor_target_up')]);
          return probes.data.result.length === probeTargets.length && monitored.data.result.length === 2;
        } catch {
          return false;
        }
      },
      'Prometheus to scrape /probe for every target and /metrics',
      60_000,
    );
  }, 90_000);

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      await new Promise((resolve) => {
        prometheus.once('exit', resolve);
        prometheus.kill('SIGTERM');
      });
    }
    await http?.close();
    await monitor?.close();
    await appliance?.stop();
    await new Promise((resolve) => listener?.close(resolve));
    tmp.remove();
  });

  it('gets every /probe target, each once, in the job its hashmod shard picks, with the probe result', async () => {
    const { data } = await query('handcheck_probe_result');
    // An empty errno label is no label, to Prometheus.
    const seen = data.result.map((r) => `${r.metric.instance} ${r.metric.job} ${r.metric.result} ${r.metric.errno ?? '-'}`).sort();
    const expected = probeTargets.map((t) => `${t} handcheck-probe-${hashmod(t, 2)} ${t.endsWith(`:${deadPort}`) ? 'refused ECONNREFUSED' : 'up -'}`).sort();
    expect(seen).toEqual(expected);
    expect(new Set(data.result.map((r) => r.metric.job))).toEqual(new Set(['handcheck-probe-0', 'handcheck-probe-1']));
    const success = await query('probe_success');
    expect(Object.fromEntries(success.data.result.map((r) => [r.metric.instance, r.value[1]]))).toEqual(Object.fromEntries(probeTargets.map((t) => [t, t.endsWith(`:${deadPort}`) ? '0' : '1'])));
  });

  it("gets the built-in scheduler's series from /metrics with the targets' labels", async () => {
    const { data } = await query('handcheck_monitor_target_up');
    expect(data.result.map((r) => `${r.metric.target} ${r.metric.site} ${r.value[1]}`).sort()).toEqual(['pump-1 osaka 1', 'spare kyoto 0']);
    const cpu = await query('process_cpu_seconds_total{job="handcheck-monitor"}');
    expect(cpu.data.result).toHaveLength(1);
  });

  it('loads the shipped rules, whose down alerts are pending for the dead targets', async () => {
    const rules = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> } };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    expect(loaded.map((r) => r.name).sort()).toEqual(['HandcheckAlertDeliveryFailing', 'HandcheckApplianceRebooted', 'HandcheckMonitorDown', 'HandcheckProbeFailed', 'HandcheckRebootLoop', 'HandcheckTargetDown', 'HandcheckTargetFlapping', 'HandcheckTargetRebootLoop']);
    await until(
      async () => {
        const alerts = (await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as { data: { alerts: Array<{ labels: Record<string, string> }> } };
        const names = alerts.data.alerts.map((a) => `${a.labels.alertname} ${a.labels.target ?? a.labels.instance}`).sort();
        return names.includes('HandcheckTargetDown spare') && names.includes(`HandcheckProbeFailed ${probeTargets.at(-1)}`);
      },
      'the down alerts to be pending',
      20_000,
    );
    const health = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as typeof rules;
    for (const rule of health.data.groups.flatMap((g) => g.rules)) expect(`${rule.name}: ${rule.health} ${rule.lastError ?? ''}`.trim()).toBe(`${rule.name}: ok`);
  });

  it("runs every query of the Grafana dashboard without error; the fleet panels get data", async () => {
    for (const { panel, expr } of dashboardQueries()) {
      const answer = await query(substitute(expr));
      expect(`${panel}: ${answer.status} ${answer.error ?? ''}`.trim()).toBe(`${panel}: success`);
    }
    const byState = await query(substitute(dashboardQueries().find((q) => q.panel === 'Targets by state')!.expr));
    expect(byState.data.result.map((r) => `${r.metric.state}=${r.value[1]}`).sort()).toEqual(['refused=1', 'up=1']);
    const downTable = await query(substitute(dashboardQueries().find((q) => q.panel === 'Down targets, longest first')!.expr));
    expect(downTable.data.result.map((r) => `${r.metric.target} ${r.metric.state}`)).toEqual(['spare refused']);
  });
});

describe('the shipped Grafana dashboard', () => {
  let monitor: Monitor;
  let http: MonitorHttpServer;
  let listener: Server;
  beforeAll(async () => {
    listener = createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    monitor = startMonitor({ defaults: { intervalMs: 100, graceMs: 20 }, targets: [{ name: 'one', address: `127.0.0.1:${(listener.address() as AddressInfo).port}` }] });
    await reach(monitor, 'one', 'up');
    http = await startMonitorHttp({ monitor, host: '127.0.0.1', port: 0, logger: silent });
  });
  afterAll(async () => {
    await http?.close();
    await monitor?.close();
    await new Promise((resolve) => listener?.close(resolve));
  });

  it('is JSON Grafana can import: a uid, a title, panels placed on the grid, each with its queries', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; title: string; schemaVersion: number; panels: Panel[] };
    expect(dashboard.uid).toBe('handcheck-fleet');
    expect(dashboard.schemaVersion).toBeGreaterThan(30);
    const ids = new Set<string>();
    for (const panel of dashboard.panels) {
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      if (panel.type === 'row') continue;
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      ids.add(panel.title);
    }
    expect(ids.size).toBe(dashboard.panels.filter((p) => p.type !== 'row').length);
  });

  it("refers only to metrics the monitor exports on /metrics and /probe (the rules: and the firmware on its own)", async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${http.address.port}/metrics`)).text();
    const probe = await (await fetch(`http://127.0.0.1:${http.address.port}/probe?target=127.0.0.1:${(listener.address() as AddressInfo).port}&grace_ms=10`)).text();
    const firmware = (await new FirmwareMetrics({ board: 'sim-appliance' }).render()).body;
    const exported = exportedNames(`${metrics}${probe}`);
    const used = new Set(dashboardQueries().flatMap((q) => metricNames(q.expr)));
    expect(used.size).toBeGreaterThan(8);
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
    const rules = readFileSync(RULES, 'utf8');
    const ruleNames = new Set([...rules.matchAll(/^\s+expr: (.+)$/gm)].flatMap((m) => metricNames(m[1]!)));
    // `up` is Prometheus's own series for every scrape.
    const firmwareExported = exportedNames(firmware);
    expect([...ruleNames].filter((name) => !exported.has(name) && !firmwareExported.has(name) && name !== 'up')).toEqual([]);
    expect([...ruleNames].filter((name) => firmwareExported.has(name)).sort()).toEqual(['handcheck_boot_count']);
  });
});
