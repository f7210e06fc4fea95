/**
 * file_sd target files written in YAML, read as Prometheus reads them (discovery/file/file.go picks
 * JSON or YAML by the extension, case aside, and decodes YAML with yaml.v2's UnmarshalStrict): the
 * same groups as the JSON path, anchors and merge keys, every scalar a label's text; refused, with
 * the line: syntax errors, keys given twice, tags, a second document, nesting past the JSON bound,
 * alias bombs, files past the size bound. The files are changed under a running monitor; and the
 * same files are put to Prometheus's own promtool, which must agree.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { type AddressInfo, type Server, createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../monitor/config.js';
import { type DiscoveryDefaults, TargetSources, fileFormat, maxDiscoveryBytes, parseTargetGroups } from '../../monitor/discovery.js';
import type { MonitorDiscoveryError } from '../../monitor/errors.js';
import type { Monitor } from '../../monitor/monitor.js';
import { silent } from '../helpers/log.js';
import { describeWhen } from '../helpers/requirements.js';
import { until } from '../helpers/wait.js';
import { reach, startMonitor, tempDir } from './helpers.js';

const defaults: DiscoveryDefaults = { settings: resolveConfig({ targets: [] }, 't').defaults, labels: { site: 'osaka' } };
const exec = promisify(execFile);
/** The example file of docs/monitor.md ("Service discovery"). */
const docsExample = /```yaml\n(# \/etc\/handcheck\/appliances\.yml\n[\s\S]*?)```/.exec(readFileSync(new URL('../../docs/monitor.md', import.meta.url), 'utf8'))![1]!;

/** The targets of a text, one line each: name, address, mode, labels. */
async function read(text: string, format: 'json' | 'yaml' = 'yaml'): Promise<string[]> {
  const targets = await parseTargetGroups(text, format, `sd.${format}`, defaults);
  return targets.map((t) => `${t.name} ${t.host}:${t.port} ${t.mode} ${JSON.stringify(t.labels)}`);
}

/** The messages of the MonitorDiscoveryError a text gives. */
async function problems(text: string, format: 'json' | 'yaml' = 'yaml'): Promise<string[]> {
  try {
    await parseTargetGroups(text, format, `sd.${format}`, defaults);
  } catch (err) {
    expect((err as MonitorDiscoveryError).code).toBe('ERR_MONITOR_DISCOVERY');
    return (err as MonitorDiscoveryError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('no problem found');
}

const fleet = `# the osaka line, as a config management tool writes it
- targets: ['10.0.0.21:502', 10.0.0.22:502]
  labels: &line1
    line: 1
    rack: 07
- targets:
    - "[2001:db8::30]:502"
  labels:
    <<: *line1
    __handcheck_name: pump-30
    __handcheck_mode: hold
    on: yes
`;

describe('YAML target groups', () => {
  it('become the same targets as the JSON of the same groups, anchors and merge keys resolved, every value its text', async () => {
    const expected = [
      '10.0.0.21:502 10.0.0.21:502 probe {"site":"osaka","line":"1","rack":"07"}',
      '10.0.0.22:502 10.0.0.22:502 probe {"site":"osaka","line":"1","rack":"07"}',
      'pump-30 2001:db8::30:502 hold {"site":"osaka","line":"1","rack":"07","on":"yes"}',
    ];
    expect(await read(fleet)).toEqual(expected);
    const json = JSON.stringify([
      { targets: ['10.0.0.21:502', '10.0.0.22:502'], labels: { line: '1', rack: '07' } },
      { targets: ['[2001:db8::30]:502'], labels: { line: '1', rack: '07', __handcheck_name: 'pump-30', __handcheck_mode: 'hold', on: 'yes' } },
    ]);
    expect(await read(json, 'json')).toEqual(expected);
  });

  it("docs/monitor.md's example file gives the targets the page says", async () => {
    const targets = await parseTargetGroups(docsExample, 'yaml', 'appliances.yml', { ...defaults, modbus: undefined });
    expect(targets.map((t) => [t.name, t.mode, t.labels, t.modbus?.port])).toEqual([
      ['10.0.0.21:502', 'probe', { site: 'osaka', line: '1' }, undefined],
      ['10.0.0.22:502', 'probe', { site: 'osaka', line: '1' }, undefined],
      ['pump-30', 'hold', { site: 'osaka', line: '1' }, 1503],
    ]);
  });

  it('an empty file (or one of comments) holds no targets, as in Prometheus; an empty label is no label', async () => {
    expect(await read('')).toEqual([]);
    expect(await read('# nothing here yet\n')).toEqual([]);
    expect(await read('- targets: [10.0.0.1:502]\n  labels:\n    site:\n    rack: ""\n')).toEqual(['10.0.0.1:502 10.0.0.1:502 probe {}']);
  });

  it('the format is the extension, as Prometheus picks it, case aside', () => {
    expect(['a.json', 'a.JSON', 'a.yml', 'a.YAML', 'a.yaml.txt', 'a'].map(fileFormat)).toEqual(['json', 'json', 'yaml', 'yaml', undefined, undefined]);
    expect(() => resolveConfig({ targets: [], discovery: { files: ['ok.yaml', 'targets.conf'] } }, 'monitor.json')).toThrow(/\/discovery\/files\/1: "targets\.conf" is invalid: must be a file name ending in \.json, \.yml or \.yaml/);
  });
});

describe('a malformed YAML file is named with its line and what is wrong', () => {
  it('a syntax error: the first, with line and column', async () => {
    expect(await problems('- targets:\n    - 10.0.0.1:502\n\t- 10.0.0.2:502\n')).toEqual([': invalid YAML at line 3, column 1: Tabs are not allowed as indentation']);
    expect(await problems("- targets: ['10.0.0.1:502'\n  labels: {}\n")).toEqual([expect.stringMatching(/^: invalid YAML at line 2, column \d+: /)]);
  });

  it('keys given twice, every one (Prometheus refuses them too)', async () => {
    expect(await problems('- targets: [10.0.0.1:502]\n  targets: [10.0.0.2:502]\n- targets: [10.0.0.3:502]\n  labels: {rack: 1, rack: 2}\n')).toEqual([
      ': invalid YAML at line 2, column 3: key targets appears twice in one mapping (YAML keys are unique; the second would silently win)',
      ': invalid YAML at line 4, column 21: key rack appears twice in one mapping (YAML keys are unique; the second would silently win)',
    ]);
  });

  it('tags, custom or standard, and a second document', async () => {
    expect(await problems('- targets: !vault [10.0.0.1:502]\n')).toEqual([': invalid YAML at line 1, column 12: Unresolved tag: !vault (tags are not read: write the value plainly or quoted)']);
    expect(await problems('- targets: [!!binary MTAuMC4wLjE6NTAy]\n')).toEqual([expect.stringMatching(/^: invalid YAML at line 1, column 13: Unresolved tag: tag:yaml\.org,2002:binary/)]);
    expect(await problems('- targets: [10.0.0.1:502]\n---\n- targets: [10.0.0.2:502]\n')).toEqual([': invalid YAML at line 2, column 1: a second document: a file of target groups is one YAML document']);
  });

  it('nesting past the JSON bound and alias bombs are refused, and the process lives on', async () => {
    // 100,000 nested flow sequences: the yaml package's composer alone would exhaust the heap and abort the process.
    expect(await problems(`${'['.repeat(100_000)}${']'.repeat(100_000)}`)).toEqual([expect.stringMatching(/^: invalid YAML at line 1, column \d+: nesting deeper than 64 levels$/)]);
    expect(await problems(`- targets: []\n  labels: {a: ${'['.repeat(62)}${']'.repeat(62)}}\n`)).toEqual([': invalid YAML at line 2, column 76: nesting deeper than 64 levels']);
    expect(await read(`- targets: []\n  labels: {a: ${'['.repeat(61)}${']'.repeat(61)}}\n`).catch((err: Error) => err.message)).toMatch(/\/0\/labels\/a: must be string/);
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]', 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]', 'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]'].join('\n');
    expect(await problems(bomb)).toEqual([expect.stringMatching(/resource exhaustion attack \(at most 100 aliases are resolved\)$/)]);
  });

  it('a group that is wrong names its path and line', async () => {
    const text = '- targets:\n    - 10.0.0.1:502\n    - nohost\n  labels:\n    job: x\n- targets: 10.0.0.9:502\n';
    expect(await problems(text)).toEqual(['/1/targets: must be array, got "10.0.0.9:502" (line 6)']);
    expect(await problems(text.split('- targets: 10.0.0.9')[0]!)).toEqual([
      expect.stringMatching(/^\/0\/labels\/job: "job" is a label the metrics or Prometheus use themselves .* \(line 5\)$/),
      '/0/targets/1: "nohost" is not HOST:PORT with a port in 1-65535 (line 3)',
    ]);
  });

  it('JSON is held to the same: line and column, keys given twice refused', async () => {
    expect(await problems('[{"targets": ["10.0.0.1:502"],}]', 'json')).toEqual([": invalid JSON at line 1, column 31: unexpected '}' after ',' (JSON allows no trailing comma)"]);
    expect(await problems('[{"targets": ["10.0.0.1:502"], "targets": []}]', 'json')).toEqual([expect.stringMatching(/^\/0\/targets: key "targets" appears twice in one object \(line 1, column 32\)/)]);
  });
});

describe('YAML files changed under a running monitor', () => {
  const tmp = tempDir();
  const listeners: Server[] = [];
  let ports: number[];
  let monitor: Monitor;
  let sources: TargetSources;
  const failures: MonitorDiscoveryError[] = [];
  const file = join(tmp.dir, 'appliances.yaml');
  /** A new version of the file, made beside it and renamed in: one change, never a half-written file read. `size` extends it, sparse. */
  const write = (text: string, size?: number): void => {
    writeFileSync(`${file}.tmp`, text);
    if (size !== undefined) truncateSync(`${file}.tmp`, size);
    renameSync(`${file}.tmp`, file);
  };
  const names = (): string[] => monitor.targets.map((t) => t.name).sort();

  beforeAll(async () => {
    for (let i = 0; i < 2; i++) {
      const server = createServer((socket) => socket.on('error', () => undefined));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      listeners.push(server);
    }
    ports = listeners.map((s) => (s.address() as AddressInfo).port);
    write(`- targets: ['127.0.0.1:${ports[0]}']\n  labels: {__handcheck_name: pump-1, line: 1}\n`);
    const config = resolveConfig({ defaults: { intervalMs: 100, graceMs: 20 }, targets: [] }, 'test');
    monitor = startMonitor({ defaults: { intervalMs: 100, graceMs: 20 }, targets: [] });
    sources = new TargetSources({
      targets: [],
      discovery: { files: [file], fileRefreshMs: 3_600_000, http: [] },
      defaults: { settings: config.defaults, labels: {} },
      apply: (targets) => monitor.setTargets(targets),
      onFailure: (_source, error) => {
        failures.push(error);
        monitor.metrics.discoveryFailure(file);
      },
      logger: silent,
    });
    await sources.start();
  });
  afterAll(async () => {
    sources?.close();
    await monitor?.close();
    for (const s of listeners) await new Promise((resolve) => s.close(resolve));
    tmp.remove();
  });

  it('starts with the file and probes it', async () => {
    expect(names()).toEqual(['pump-1']);
    await reach(monitor, 'pump-1', 'up');
    expect(monitor.target('pump-1')!.labels).toEqual({ line: '1' });
  });

  it('follows a change: the new target is probed, the one that left is stopped', async () => {
    write(`- targets: ['127.0.0.1:${ports[1]}']\n  labels:\n    __handcheck_name: pump-2\n    line: 2\n`);
    await until(() => names().join() === 'pump-2', 'the change to reach the monitor');
    await reach(monitor, 'pump-2', 'up');
  });

  it('a malformed version is named with file, line and problem, and the last good targets stay', async () => {
    failures.length = 0;
    write(`- targets:\n\t- '127.0.0.1:${ports[0]}'\n`);
    await until(() => failures.length > 0, 'the malformed file to be read');
    expect(failures[0]!.message).toBe(`${file}: /: invalid YAML at line 2, column 1: Tabs are not allowed as indentation`);
    expect(names()).toEqual(['pump-2']);
    expect((await monitor.metrics.render()).body).toMatch(/handcheck_monitor_discovery_failures_total\{source="[^"]*appliances\.yaml"\} [1-9]/);
  });

  it('the fixed file is taken again, even written in place rather than renamed', async () => {
    writeFileSync(file, `- targets: ['127.0.0.1:${ports[0]}', '127.0.0.1:${ports[1]}']\n`);
    await until(() => names().length === 2, 'the fixed file to reach the monitor');
    expect(names()).toEqual([`127.0.0.1:${ports[0]}`, `127.0.0.1:${ports[1]}`].sort());
  });

  it('a file past the size bound is refused before it is read; the targets stay', async () => {
    failures.length = 0;
    // Sparse: the size is what the bound is checked against, no need to write the bytes. In one
    // change, since an empty file read on its own would be news (it holds no targets).
    write('', maxDiscoveryBytes + 1);
    await until(() => failures.length > 0, 'the large file to be refused');
    expect(failures[0]!.message).toBe(`${file}: /: ${maxDiscoveryBytes + 1} bytes, more than the ${maxDiscoveryBytes} a discovery source may hold`);
    expect(names()).toHaveLength(2);
  });
});

describeWhen(existsSync('/usr/bin/promtool') ? undefined : '/usr/bin/promtool is not installed (Debian package prometheus)', "Prometheus's own reading of the same files (promtool check config)", () => {
  const tmp = tempDir();
  afterAll(() => tmp.remove());

  /** Whether promtool accepts a Prometheus config whose file_sd names the file, and the monitor the file itself. */
  async function both(name: string, text: string): Promise<{ promtool: boolean; monitor: boolean; said: string }> {
    const file = join(tmp.dir, name);
    writeFileSync(file, text);
    const config = join(tmp.dir, `prometheus-${name}.yml`);
    writeFileSync(config, `scrape_configs:\n  - job_name: handcheck\n    file_sd_configs:\n      - files: ['${file}']\n`);
    const promtool = await exec('promtool', ['check', 'config', config]).then(
      () => ({ ok: true, said: '' }),
      (err: { stdout?: string; stderr?: string }) => ({ ok: false, said: `${err.stdout ?? ''}${err.stderr ?? ''}` }),
    );
    const monitor = await parseTargetGroups(text, fileFormat(name)!, name, defaults).then(
      () => true,
      () => false,
    );
    return { promtool: promtool.ok, monitor, said: promtool.said };
  }

  it('accept the same files', async () => {
    for (const [name, text] of [
      ['fleet.yml', fleet],
      ['docs-example.yml', docsExample],
      ['empty.yaml', ''],
      ['fleet.json', JSON.stringify([{ targets: ['10.0.0.21:502'], labels: { line: '1', __handcheck_name: 'pump-21' } }])],
    ] as const) {
      const { promtool, monitor, said } = await both(name, text);
      expect({ name, promtool, monitor, said }).toEqual({ name, promtool: true, monitor: true, said: '' });
    }
  });

  it('refuse the same files: a key given twice, an unknown field, not a list', async () => {
    for (const [name, text] of [
      ['twice.yml', '- targets: [10.0.0.1:502]\n  targets: [10.0.0.2:502]\n'],
      ['field.yml', '- targets: [10.0.0.1:502]\n  label: {line: 1}\n'],
      ['map.yml', 'targets: [10.0.0.1:502]\n'],
      ['syntax.json', '[{"targets": ["10.0.0.1:502"]'],
    ] as const) {
      const { promtool, monitor } = await both(name, text);
      expect({ name, promtool, monitor }).toEqual({ name, promtool: false, monitor: false });
    }
  });
});
