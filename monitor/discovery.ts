/**
 * Where the built-in scheduler's targets come from besides the config file: Prometheus's service
 * discovery formats, so a fleet inventory that already feeds Prometheus feeds the monitor too.
 * - file SD: JSON files of target groups (`[{"targets": ["HOST:PORT", ...], "labels": {...}}]`),
 *   read again when they change (the directory is watched, so an atomic rename is seen) and every
 *   `fileRefreshMs` in case a change went unnoticed;
 * - HTTP SD: the same JSON from a URL, fetched every `refreshMs` (Prometheus's http_sd_config).
 * A source that fails (unreadable, not JSON, an invalid group) keeps the targets it gave last and is
 * counted in `handcheck_monitor_discovery_failures_total`; the error names the source and the path.
 *
 * Labels beginning with `__` are dropped, as Prometheus drops them after relabeling, except
 * `__handcheck_name` (the target's name; default its address) and `__handcheck_mode` (probe or
 * hold). Every other setting comes from the config's `defaults`.
 */
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { Logger } from 'pino';
import { parseHostPort } from '../config/host-port.js';
import { schemaIssues } from '../config/issues.js';
import { type MonitorMode, type TargetConfig, type TargetSettings, reservedLabelReason } from './config.js';
import { type ConfigIssue, MonitorDiscoveryError } from './errors.js';

export interface DiscoveryConfig {
  /** file SD: JSON files of target groups. */
  files: readonly string[];
  /** How often every file is read again even without a change seen. Default 5 minutes, as Prometheus. */
  fileRefreshMs: number;
  /** HTTP SD: URLs answering target groups as JSON, each fetched every `refreshMs` (default 60 s, as Prometheus). */
  http: ReadonlyArray<{ url: string; refreshMs: number }>;
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

const validate = new Ajv2020({ allErrors: true, strict: true }).compile(groupSchema);

interface TargetGroup {
  targets: string[];
  labels?: Record<string, string>;
}

/** Target groups (Prometheus SD format) as targets; throws MonitorDiscoveryError naming every problem. */
export function targetsFromGroups(document: unknown, source: string, defaults: { settings: Readonly<TargetSettings>; labels: Readonly<Record<string, string>> }): TargetConfig[] {
  if (!validate(document)) throw new MonitorDiscoveryError(source, schemaIssues(validate.errors ?? []));
  const issues: ConfigIssue[] = [];
  const targets: TargetConfig[] = [];
  const names = new Map<string, string>();
  (document as TargetGroup[]).forEach((group, g) => {
    const { __handcheck_name: name, __handcheck_mode: mode, ...given } = group.labels ?? {};
    const labels: Record<string, string> = { ...defaults.labels };
    for (const [key, value] of Object.entries(given)) {
      if (key.startsWith('__')) continue;
      const reserved = reservedLabelReason(key);
      if (reserved) issues.push({ path: `/${g}/labels/${key}`, message: reserved });
      else labels[key] = value;
    }
    if (mode !== undefined && mode !== 'probe' && mode !== 'hold') issues.push({ path: `/${g}/labels/__handcheck_mode`, message: `"${mode}" is not probe or hold` });
    if (name !== undefined && group.targets.length !== 1) issues.push({ path: `/${g}/labels/__handcheck_name`, message: `names one target, but the group has ${group.targets.length}` });
    group.targets.forEach((address, t) => {
      const path = `/${g}/targets/${t}`;
      const parsed = parseHostPort(address);
      if (!parsed) return issues.push({ path, message: `"${address}" is not HOST:PORT with a port in 1-65535` });
      const targetName = name ?? address;
      const earlier = names.get(targetName);
      if (earlier !== undefined) return issues.push({ path, message: `"${targetName}" is already the name of ${earlier}` });
      names.set(targetName, path);
      // Asking the appliance why (Modbus) is for the config's own targets: a discovered one is not asked.
      targets.push(Object.freeze({ ...defaults.settings, ...(mode ? { mode: mode as MonitorMode } : {}), name: targetName, host: parsed.host, port: parsed.port, labels: Object.freeze({ ...labels }), modbus: undefined }));
      return undefined;
    });
  });
  if (issues.length > 0) throw new MonitorDiscoveryError(source, issues);
  return targets;
}

export interface TargetSourcesOptions {
  /** The config file's own targets. */
  targets: readonly TargetConfig[];
  discovery: DiscoveryConfig;
  defaults: { settings: Readonly<TargetSettings>; labels: Readonly<Record<string, string>> };
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

  constructor(private readonly options: TargetSourcesOptions) {
    this.own = options.targets;
    this.log = options.logger;
  }

  /** Reads every source once (what fails is logged and retried later), then starts watching. */
  async start(): Promise<void> {
    const { files, fileRefreshMs, http } = this.options.discovery;
    for (const file of files) this.readFile(file);
    await Promise.all(http.map((source) => this.fetchUrl(source.url, source.refreshMs)));
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
          pending = setTimeout(() => this.refreshFiles(files), 50);
        });
        watcher.on('error', (err) => this.log.warn({ err, dir }, 'cannot watch a discovery directory; reading it every fileRefreshMs only'));
        this.watchers.push(watcher);
      } catch (err) {
        this.log.warn({ err, dir }, 'cannot watch a discovery directory; reading it every fileRefreshMs only');
      }
    }
    if (files.length > 0) this.timers.push(setInterval(() => this.refreshFiles(files), fileRefreshMs).unref());
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

  private refreshFiles(files: readonly string[]): void {
    let changed = false;
    for (const file of files) changed = this.readFile(file) || changed;
    if (changed) this.publish();
  }

  /** Reads one file; true when its targets changed. */
  private readFile(file: string): boolean {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      this.fail(file, new MonitorDiscoveryError(file, [{ path: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]));
      return false;
    }
    return this.accept(file, text);
  }

  /** Fetches one URL; true when its targets changed. */
  private async fetchUrl(url: string, refreshMs: number): Promise<boolean> {
    let text: string;
    try {
      const response = await fetch(url, { signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(Math.min(refreshMs, 10_000))]), headers: { accept: 'application/json' } });
      text = await response.text();
      if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
    } catch (err) {
      if (this.abort.signal.aborted) return false;
      const cause = (err as Error & { cause?: { code?: string } }).cause?.code;
      this.fail(url, new MonitorDiscoveryError(url, [{ path: '', message: `cannot fetch: ${cause ?? (err as Error).message}` }]));
      return false;
    }
    return this.accept(url, text);
  }

  private accept(source: string, text: string): boolean {
    if (this.texts.get(source) === text) return false;
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch (err) {
      this.fail(source, new MonitorDiscoveryError(source, [{ path: '', message: `not JSON: ${(err as Error).message}` }]));
      return false;
    }
    try {
      this.found.set(source, targetsFromGroups(document, source, this.options.defaults));
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
