/**
 * Where the built-in scheduler's targets come from besides the config file: Prometheus's service
 * discovery formats, so a fleet inventory that already feeds Prometheus feeds the monitor too.
 * - file SD: files of target groups (`[{"targets": ["HOST:PORT", ...], "labels": {...}}]`), JSON or
 *   YAML by the file's extension as Prometheus reads them (config/yaml-text.ts for YAML), read again
 *   when they change (the directory is watched, so an atomic rename is seen) and every
 *   `fileRefreshMs` in case a change went unnoticed;
 * - HTTP SD: the same JSON from a URL, fetched every `refreshMs` (Prometheus's http_sd_config).
 * A source that fails (unreadable, too large, not JSON or YAML, an invalid group) keeps the targets it
 * gave last and is counted in `handcheck_monitor_discovery_failures_total`; the error names the
 * source, the path and, in YAML, the line.
 *
 * Labels beginning with `__` are dropped, as Prometheus drops them after relabeling, except the
 * `__handcheck_*` ones, which set what the config's `defaults` would otherwise set for the target:
 * its name (default its address), mode, and whether and how it is asked why over Modbus. An empty
 * label is no label, as in Prometheus.
 */
import { type FSWatcher, watch } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { Logger } from 'pino';
import { parseHostPort } from '../config/host-port.js';
import { schemaIssues } from '../config/issues.js';
import { isObject, scanJson } from '../config/json-text.js';
import { readYaml } from '../config/yaml-text.js';
import { type ModbusQueryConfig, type MonitorMode, type TargetConfig, type TargetSettings, modbusBounds, reservedLabelReason, resolveModbusQuery } from './config.js';
import { type ConfigIssue, MonitorDiscoveryError } from './errors.js';

export interface DiscoveryConfig {
  /** file SD: files of target groups, JSON (`.json`) or YAML (`.yml`, `.yaml`). */
  files: readonly string[];
  /** How often every file is read again even without a change seen. Default 5 minutes, as Prometheus. */
  fileRefreshMs: number;
  /** HTTP SD: URLs answering target groups as JSON, each fetched every `refreshMs` (default 60 s, as Prometheus). */
  http: ReadonlyArray<{ url: string; refreshMs: number }>;
}

/**
 * The most a source may hold: some 40,000 targets with a few labels each. A source larger than this
 * is refused before it is read, so a runaway generator cannot exhaust the monitor's memory.
 */
export const maxDiscoveryBytes = 4 * 1024 * 1024;

export type DiscoveryFormat = 'json' | 'yaml';

/** The format of a file SD file, by its extension as Prometheus picks it; undefined for any other. */
export function fileFormat(file: string): DiscoveryFormat | undefined {
  if (/\.json$/i.test(file)) return 'json';
  if (/\.ya?ml$/i.test(file)) return 'yaml';
  return undefined;
}

const groupSchema = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['targets'],
    properties: {
      targets: { type: 'array', items: { type: 'string' } },
      labels: { type: 'object', propertyNames: { pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$' }, additionalProperties: { type: 'string', maxLength: 200 } },
    },
  },
} as const;

const validate = new Ajv2020({ allErrors: true, verbose: true, strict: true }).compile(groupSchema);

interface TargetGroup {
  targets: string[];
  labels?: Record<string, string>;
}

/**
 * Go's decoder, which Prometheus uses, reads a null where a list, a mapping or a label value goes as
 * an empty one; YAML writes null by leaving the value out (`labels:`). So does this reader.
 */
function nullsAsEmpty(document: unknown): unknown {
  if (!Array.isArray(document)) return document;
  return document.map((group: unknown) => {
    if (!isObject(group)) return group;
    const out: Record<string, unknown> = { ...group };
    if (out.targets === null) out.targets = [];
    if (out.labels === null) delete out.labels;
    else if (isObject(out.labels)) out.labels = Object.fromEntries(Object.entries(out.labels).map(([key, value]) => [key, value ?? '']));
    return out;
  });
}

/** The labels that set a discovered target's own settings (Prometheus's `__param_*`, `__scrape_interval__` likewise set a target's scrape). */
const settingLabels = ['__handcheck_name', '__handcheck_mode', '__handcheck_modbus', '__handcheck_modbus_port', '__handcheck_modbus_unit_id', '__handcheck_modbus_timeout_ms'] as const;
type SettingLabel = (typeof settingLabels)[number];

export interface DiscoveryDefaults {
  settings: Readonly<TargetSettings>;
  labels: Readonly<Record<string, string>>;
  /** The config's `defaults.modbus`: discovered targets are asked why with it unless their labels say otherwise. */
  modbus?: Readonly<Partial<ModbusQueryConfig>> | undefined;
}

/**
 * Whether and how a discovered target is asked why: the config's default, then its labels. Any
 * `__handcheck_modbus_*` label (or `__handcheck_modbus="true"`) turns asking on; `"false"` turns it
 * off whatever the default says.
 */
function modbusOf(meta: Partial<Record<SettingLabel, string>>, path: string, fallback: DiscoveryDefaults['modbus'], issues: ConfigIssue[]): ModbusQueryConfig | undefined {
  const given: Partial<ModbusQueryConfig> = {};
  const numbers: Array<[SettingLabel, keyof typeof modbusBounds]> = [
    ['__handcheck_modbus_port', 'port'],
    ['__handcheck_modbus_unit_id', 'unitId'],
    ['__handcheck_modbus_timeout_ms', 'timeoutMs'],
  ];
  for (const [label, key] of numbers) {
    const value = meta[label];
    if (value === undefined) continue;
    const [min, max] = modbusBounds[key];
    const n = /^\d{1,6}$/.test(value) ? Number(value) : Number.NaN;
    if (n >= min && n <= max) given[key] = n;
    else issues.push({ path: `${path}/${label}`, message: `"${value}" is not an integer in ${min}-${max}` });
  }
  const turn = meta.__handcheck_modbus;
  if (turn !== undefined && turn !== 'true' && turn !== 'false') issues.push({ path: `${path}/__handcheck_modbus`, message: `"${turn}" is not true or false` });
  const set = numbers.filter(([label]) => meta[label] !== undefined).map(([label]) => label);
  if (turn === 'false') {
    if (set.length > 0) issues.push({ path: `${path}/__handcheck_modbus`, message: `"false" turns asking off, but ${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set` });
    return undefined;
  }
  return fallback || turn === 'true' || set.length > 0 ? resolveModbusQuery({ ...fallback, ...given }) : undefined;
}

/** Target groups (Prometheus SD format) as targets; throws MonitorDiscoveryError naming every problem. */
export function targetsFromGroups(document: unknown, source: string, defaults: DiscoveryDefaults): TargetConfig[] {
  const groups = nullsAsEmpty(document);
  if (!validate(groups)) throw new MonitorDiscoveryError(source, schemaIssues(validate.errors ?? []));
  const issues: ConfigIssue[] = [];
  const targets: TargetConfig[] = [];
  const names = new Map<string, string>();
  (groups as TargetGroup[]).forEach((group, g) => {
    const labels: Record<string, string> = { ...defaults.labels };
    const meta: Partial<Record<SettingLabel, string>> = {};
    for (const [key, value] of Object.entries(group.labels ?? {})) {
      const path = `/${g}/labels/${key}`;
      if (key.startsWith('__handcheck_')) {
        if (!(settingLabels as readonly string[]).includes(key)) issues.push({ path, message: `unknown label "${key}" (known: ${settingLabels.join(', ')})` });
        else if (value !== '') meta[key as SettingLabel] = value;
        continue;
      }
      if (key.startsWith('__')) continue;
      const reserved = reservedLabelReason(key);
      if (reserved) issues.push({ path, message: reserved });
      // An empty label is no label (Prometheus): it takes a default label away.
      else if (value === '') delete labels[key];
      else labels[key] = value;
    }
    const { __handcheck_name: name, __handcheck_mode: mode } = meta;
    if (mode !== undefined && mode !== 'probe' && mode !== 'hold') issues.push({ path: `/${g}/labels/__handcheck_mode`, message: `"${mode}" is not probe or hold` });
    if (name !== undefined && group.targets.length !== 1) issues.push({ path: `/${g}/labels/__handcheck_name`, message: `names one target, but the group has ${group.targets.length}` });
    const modbus = modbusOf(meta, `/${g}/labels`, defaults.modbus, issues);
    group.targets.forEach((address, t) => {
      const path = `/${g}/targets/${t}`;
      const parsed = parseHostPort(address);
      if (!parsed) return issues.push({ path, message: `"${address}" is not HOST:PORT with a port in 1-65535` });
      const targetName = name ?? address;
      const earlier = names.get(targetName);
      if (earlier !== undefined) return issues.push({ path, message: `"${targetName}" is already the name of ${earlier}` });
      names.set(targetName, path);
      targets.push(Object.freeze({ ...defaults.settings, ...(mode ? { mode: mode as MonitorMode } : {}), name: targetName, host: parsed.host, port: parsed.port, labels: Object.freeze({ ...labels }), modbus }));
      return undefined;
    });
  });
  if (issues.length > 0) throw new MonitorDiscoveryError(source, issues);
  return targets;
}

/**
 * A source's text as target groups: JSON strictly (a syntax error with its line and column, a key
 * given twice refused, nesting bounded), YAML as config/yaml-text.ts reads it; an empty YAML file
 * holds no groups, as in Prometheus. Problems in YAML name their line.
 */
export async function parseTargetGroups(text: string, format: DiscoveryFormat, source: string, defaults: DiscoveryDefaults): Promise<TargetConfig[]> {
  let document: unknown;
  let lineOf: ((pointer: string) => number | undefined) | undefined;
  if (format === 'json') {
    const scan = scanJson(text);
    if (!scan.ok) throw new MonitorDiscoveryError(source, [{ path: '', message: `invalid JSON at line ${scan.syntax.line}, column ${scan.syntax.column}: ${scan.syntax.detail}` }]);
    if (scan.duplicates.length > 0) throw new MonitorDiscoveryError(source, scan.duplicates);
    document = JSON.parse(text);
  } else {
    const read = await readYaml(text);
    if (!read.ok) throw new MonitorDiscoveryError(source, read.problems.map((p) => ({ path: '', message: `invalid YAML at line ${p.line}, column ${p.column}: ${p.detail}` })));
    document = read.value ?? [];
    lineOf = read.lineOf;
  }
  try {
    return targetsFromGroups(document, source, defaults);
  } catch (err) {
    if (!(err instanceof MonitorDiscoveryError) || !lineOf) throw err;
    throw new MonitorDiscoveryError(
      source,
      err.issues.map((issue) => {
        const line = lineOf(issue.path);
        return line === undefined ? issue : { ...issue, message: `${issue.message} (line ${line})` };
      }),
    );
  }
}

/** A response's body as text, refused past maxDiscoveryBytes without reading the rest. */
async function boundedText(response: Response): Promise<string> {
  const tooLarge = (): MonitorDiscoveryError => new MonitorDiscoveryError('', [{ path: '', message: `more than the ${maxDiscoveryBytes} bytes a discovery source may hold` }]);
  if (Number(response.headers.get('content-length')) > maxDiscoveryBytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.byteLength;
    if (size > maxDiscoveryBytes) {
      await response.body?.cancel();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface TargetSourcesOptions {
  /** The config file's own targets. */
  targets: readonly TargetConfig[];
  discovery: DiscoveryConfig;
  defaults: DiscoveryDefaults;
  /** Receives the whole set whenever any source changes it. */
  apply: (targets: readonly TargetConfig[]) => void;
  onFailure?: (source: string, error: MonitorDiscoveryError) => void;
  logger: Logger;
}

/**
 * The union of the config's targets and every discovery source's, handed to the monitor whenever a
 * source changes. A name given by two sources is watched once, as the first source (the config
 * file, then the files in order, then the URLs) gives it; the other is logged.
 */
export class TargetSources {
  private own: readonly TargetConfig[];
  private readonly found = new Map<string, readonly TargetConfig[]>();
  private readonly texts = new Map<string, string>();
  private readonly watchers: FSWatcher[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly abort = new AbortController();
  private readonly log: Logger;
  /** File reads run one after another, so a slow read of an old version cannot land after a newer one. */
  private fileReads: Promise<void> = Promise.resolve();

  constructor(private readonly options: TargetSourcesOptions) {
    this.own = options.targets;
    this.log = options.logger;
  }

  /** Reads every source once (what fails is logged and retried later), then starts watching. */
  async start(): Promise<void> {
    const { files, fileRefreshMs, http } = this.options.discovery;
    await Promise.all([this.refreshFiles(files, false), ...http.map((source) => this.fetchUrl(source.url, source.refreshMs))]);
    this.publish();
    const byDir = new Map<string, Set<string>>();
    for (const file of files) {
      const full = resolve(file);
      byDir.set(dirname(full), (byDir.get(dirname(full)) ?? new Set()).add(basename(full)));
    }
    for (const [dir, names] of byDir) {
      let pending: NodeJS.Timeout | undefined;
      try {
        const watcher = watch(dir, (_event, name) => {
          if (name !== null && !names.has(name.toString())) return;
          // An editor's save is several events; read once they settle.
          clearTimeout(pending);
          pending = setTimeout(() => void this.refreshFiles(files, true), 50);
        });
        watcher.on('error', (err) => this.log.warn({ err, dir }, 'cannot watch a discovery directory; reading it every fileRefreshMs only'));
        this.watchers.push(watcher);
      } catch (err) {
        this.log.warn({ err, dir }, 'cannot watch a discovery directory; reading it every fileRefreshMs only');
      }
    }
    if (files.length > 0) this.timers.push(setInterval(() => void this.refreshFiles(files, true), fileRefreshMs).unref());
    for (const { url, refreshMs } of http) {
      this.timers.push(
        setInterval(() => {
          void this.fetchUrl(url, refreshMs).then((changed) => changed && this.publish());
        }, refreshMs).unref(),
      );
    }
  }

  /** New config targets (SIGHUP). */
  setOwn(targets: readonly TargetConfig[]): void {
    this.own = targets;
    this.publish();
  }

  close(): void {
    this.abort.abort();
    for (const watcher of this.watchers) watcher.close();
    for (const timer of this.timers) clearInterval(timer);
  }

  /** Reads every file, after any read under way; publishes what changed when `publish`. */
  private refreshFiles(files: readonly string[], publish: boolean): Promise<void> {
    this.fileReads = this.fileReads.then(async () => {
      let changed = false;
      for (const file of files) changed = (await this.readFile(file)) || changed;
      if (changed && publish && !this.abort.signal.aborted) this.publish();
    });
    return this.fileReads;
  }

  /** Reads one file; true when its targets changed. */
  private async readFile(file: string): Promise<boolean> {
    const format = fileFormat(file);
    if (!format) {
      this.fail(file, new MonitorDiscoveryError(file, [{ path: '', message: 'the name does not end in .json, .yml or .yaml, which pick its format' }]));
      return false;
    }
    let text: string;
    try {
      const handle = await open(file, 'r');
      try {
        const { size } = await handle.stat();
        if (size > maxDiscoveryBytes) throw new MonitorDiscoveryError(file, [{ path: '', message: `${size} bytes, more than the ${maxDiscoveryBytes} a discovery source may hold` }]);
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (err) {
      this.fail(file, err instanceof MonitorDiscoveryError ? err : new MonitorDiscoveryError(file, [{ path: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]));
      return false;
    }
    return this.accept(file, text, format);
  }

  /** Fetches one URL; true when its targets changed. */
  private async fetchUrl(url: string, refreshMs: number): Promise<boolean> {
    let text: string;
    try {
      const response = await fetch(url, { signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(Math.min(refreshMs, 10_000))]), headers: { accept: 'application/json' } });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new Error(`HTTP ${response.status}`);
      }
      text = await boundedText(response);
    } catch (err) {
      if (this.abort.signal.aborted) return false;
      if (err instanceof MonitorDiscoveryError) {
        this.fail(url, new MonitorDiscoveryError(url, err.issues));
        return false;
      }
      const cause = (err as Error & { cause?: { code?: string } }).cause?.code;
      this.fail(url, new MonitorDiscoveryError(url, [{ path: '', message: `cannot fetch: ${cause ?? (err as Error).message}` }]));
      return false;
    }
    // Prometheus's http_sd answers JSON only.
    return this.accept(url, text, 'json');
  }

  private async accept(source: string, text: string, format: DiscoveryFormat): Promise<boolean> {
    if (this.texts.get(source) === text) return false;
    try {
      this.found.set(source, await parseTargetGroups(text, format, source, this.options.defaults));
    } catch (err) {
      if (!(err instanceof MonitorDiscoveryError)) throw err;
      this.fail(source, err);
      return false;
    }
    this.texts.set(source, text);
    return true;
  }

  private fail(source: string, error: MonitorDiscoveryError): void {
    this.log.error({ err: error, source, kept: this.found.get(source)?.length ?? 0 }, 'target discovery failed; keeping the targets it gave last');
    this.options.onFailure?.(source, error);
  }

  private publish(): void {
    const seen = new Map<string, string>();
    const all: TargetConfig[] = [];
    const sources: Array<[string, readonly TargetConfig[]]> = [
      ['the config', this.own],
      ...this.options.discovery.files.map((f): [string, readonly TargetConfig[]] => [f, this.found.get(f) ?? []]),
      ...this.options.discovery.http.map(({ url }): [string, readonly TargetConfig[]] => [url, this.found.get(url) ?? []]),
    ];
    for (const [source, targets] of sources) {
      for (const target of targets) {
        const first = seen.get(target.name);
        if (first !== undefined) {
          if (first !== source) this.log.warn({ target: target.name, source, first }, 'a target name given by two sources is watched as the first gives it');
          continue;
        }
        seen.set(target.name, source);
        all.push(target);
      }
    }
    this.options.apply(all);
  }
}
