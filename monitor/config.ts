/**
 * The monitor's configuration: targets (name, address, labels, mode, timers, thresholds) from a JSON
 * file or the command line, validated once against a schema with defaults and no unknown keys, every
 * problem named by its JSON path, then frozen.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parseHostPort } from '../config/host-port.js';
import { schemaIssues } from '../config/issues.js';
import { type ConfigIssue, MonitorConfigError } from './errors.js';

export type MonitorMode = 'probe' | 'hold';

export interface TargetSettings {
  mode: MonitorMode;
  /** probe: time between two connects; hold: the longest wait between reconnects. */
  intervalMs: number;
  /** How long a fresh connection must stay open to count as `up`. */
  graceMs: number;
  connectTimeoutMs: number;
  /** Consecutive `up` results that bring a down target up. */
  rise: number;
  /** Consecutive failed results that bring an up target down. */
  fall: number;
  /** hold: idle time before TCP keepalive probes start (then one a second, ten unanswered give up). */
  keepAliveMs: number;
}

export interface TargetConfig extends TargetSettings {
  name: string;
  host: string;
  port: number;
  labels: Readonly<Record<string, string>>;
}

export interface WebhookConfig {
  url: string;
  /** Per attempt. */
  timeoutMs: number;
}

export interface AlertConfig {
  /** Run through `/bin/sh -c`, the transition as JSON on stdin and in HANDCHECK_* variables. */
  command: string | undefined;
  webhook: WebhookConfig | undefined;
  /** Attempts after the first failed one, for the command as for the webhook. */
  retries: number;
  /** First wait between attempts; doubles each time. */
  backoffMs: number;
}

export interface MonitorConfig {
  targets: readonly TargetConfig[];
  /** The settings a target gets when it sets none: also what `/probe` uses. */
  defaults: Readonly<TargetSettings>;
  /** `HOST:PORT` for /metrics and the dashboard; undefined: no HTTP server. */
  http: string | undefined;
  /** SQLite file for the history; undefined: history in memory only. */
  db: string | undefined;
  retentionDays: number;
  alerts: AlertConfig;
  /** Per-target connect duration histogram on /metrics (12 series a target). */
  connectHistogram: boolean;
}

export const defaultSettings: Readonly<TargetSettings> = Object.freeze({
  mode: 'probe',
  intervalMs: 1000,
  graceMs: 300,
  connectTimeoutMs: 2000,
  rise: 1,
  fall: 1,
  keepAliveMs: 1000,
});

/**
 * Label names a target cannot take: the ones the metrics use themselves, and the ones Prometheus
 * gives meaning to (`job` and `instance` are attached by the scrape, `__*` names are reserved to it).
 */
export const reservedLabels = new Set(['target', 'host', 'port', 'mode', 'state', 'from', 'to', 'result', 'le', 'sink', 'outcome', 'job', 'instance']);

/** Why a label name cannot be a target's, or undefined when it can. */
export function reservedLabelReason(key: string): string | undefined {
  if (key.startsWith('__')) return `"${key}" starts with "__", which Prometheus reserves for its own labels`;
  if (reservedLabels.has(key)) return `"${key}" is a label the metrics or Prometheus use themselves (reserved: ${[...reservedLabels].join(', ')}, __*)`;
  return undefined;
}

const settingsProperties = {
  mode: { enum: ['probe', 'hold'] },
  intervalMs: { type: 'integer', minimum: 10, maximum: 3_600_000 },
  graceMs: { type: 'integer', minimum: 0, maximum: 60_000 },
  connectTimeoutMs: { type: 'integer', minimum: 1, maximum: 120_000 },
  rise: { type: 'integer', minimum: 1, maximum: 100 },
  fall: { type: 'integer', minimum: 1, maximum: 100 },
  keepAliveMs: { type: 'integer', minimum: 1000, maximum: 3_600_000 },
} as const;

const labels = {
  type: 'object',
  propertyNames: { pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$', description: 'a label name matching [a-zA-Z_][a-zA-Z0-9_]* (Prometheus label syntax)' },
  additionalProperties: { type: 'string', maxLength: 200 },
} as const;

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['targets'],
  properties: {
    $schema: { type: 'string' },
    defaults: { type: 'object', additionalProperties: false, properties: { ...settingsProperties, labels } },
    targets: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['address'],
        properties: { name: { type: 'string', minLength: 1, maxLength: 200 }, address: { type: 'string' }, labels, ...settingsProperties },
      },
    },
    http: { type: 'string' },
    db: { type: 'string', minLength: 1 },
    retentionDays: { type: 'number', exclusiveMinimum: 0 },
    connectHistogram: { type: 'boolean' },
    alerts: {
      type: 'object',
      additionalProperties: false,
      properties: {
        command: { type: 'string', minLength: 1 },
        webhook: {
          type: 'object',
          additionalProperties: false,
          required: ['url'],
          properties: { url: { type: 'string', pattern: '^https?://' }, timeoutMs: { type: 'integer', minimum: 1 } },
        },
        retries: { type: 'integer', minimum: 0, maximum: 20 },
        backoffMs: { type: 'integer', minimum: 0 },
      },
    },
  },
} as const;

const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true });
const validate = ajv.compile(schema);

export interface ConfigFile {
  defaults?: Partial<TargetSettings> & { labels?: Record<string, string> };
  targets: Array<Partial<TargetSettings> & { name?: string; address: string; labels?: Record<string, string> }>;
  http?: string;
  db?: string;
  retentionDays?: number;
  connectHistogram?: boolean;
  alerts?: { command?: string; webhook?: { url: string; timeoutMs?: number }; retries?: number; backoffMs?: number };
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * What the schema cannot say: addresses that do not parse, duplicate names, reserved label names, a
 * grace window as long as the interval. Read defensively, so that a document the schema rejected is
 * still checked and every problem is named at once.
 */
function semanticIssues(document: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (!isObject(document)) return issues;
  const defaults = isObject(document.defaults) ? document.defaults : {};
  const defaultLabels = isObject(defaults.labels) ? defaults.labels : {};
  const names = new Map<string, number>();
  (Array.isArray(document.targets) ? document.targets : []).forEach((entry: unknown, i) => {
    if (!isObject(entry)) return;
    const address = typeof entry.address === 'string' ? entry.address : undefined;
    if (address !== undefined && !parseHostPort(address)) issues.push({ path: `/targets/${i}/address`, message: `"${address}" is not HOST:PORT with a port in 1-65535` });
    const name = typeof entry.name === 'string' ? entry.name : address;
    if (name !== undefined) {
      const earlier = names.get(name);
      if (earlier !== undefined) issues.push({ path: `/targets/${i}/name`, message: `"${name}" is already the name of /targets/${earlier}` });
      names.set(name, i);
    }
    for (const key of Object.keys({ ...defaultLabels, ...(isObject(entry.labels) ? entry.labels : {}) })) {
      const reserved = reservedLabelReason(key);
      if (reserved) issues.push({ path: `/targets/${i}/labels/${key}`, message: reserved });
    }
    const setting = (key: 'mode' | 'graceMs' | 'intervalMs'): unknown => entry[key] ?? defaults[key] ?? defaultSettings[key];
    const [mode, graceMs, intervalMs] = [setting('mode'), setting('graceMs'), setting('intervalMs')];
    if (mode === 'probe' && typeof graceMs === 'number' && typeof intervalMs === 'number' && graceMs >= intervalMs) {
      issues.push({ path: `/targets/${i}/graceMs`, message: `${graceMs} ms must be shorter than intervalMs (${intervalMs} ms) in probe mode` });
    }
  });
  if (typeof document.http === 'string' && document.http !== '' && !parseHostPort(document.http, { allowPortZero: true })) issues.push({ path: '/http', message: `"${document.http}" is not HOST:PORT` });
  return issues;
}

/** Validates a parsed config document and resolves defaults; throws MonitorConfigError naming every problem. */
export function resolveConfig(document: unknown, source: string): MonitorConfig {
  const issues = [...(validate(document) ? [] : schemaIssues(validate.errors ?? [])), ...semanticIssues(document)];
  if (issues.length > 0) throw new MonitorConfigError(source, issues);
  const file = document as ConfigFile;
  const { labels: defaultLabels = {}, ...defaults } = file.defaults ?? {};
  const targets = file.targets.map((entry) => {
    const { name, address, labels: own = {}, ...settings } = entry;
    const { host, port } = parseHostPort(address)!;
    return Object.freeze({ ...defaultSettings, ...defaults, ...settings, name: name ?? address, host, port, labels: Object.freeze({ ...defaultLabels, ...own }) });
  });
  const alerts = file.alerts ?? {};
  return Object.freeze({
    targets: Object.freeze(targets),
    defaults: Object.freeze({ ...defaultSettings, ...defaults }),
    http: file.http || undefined,
    db: file.db,
    retentionDays: file.retentionDays ?? 30,
    connectHistogram: file.connectHistogram ?? true,
    alerts: Object.freeze({
      command: alerts.command,
      webhook: alerts.webhook && Object.freeze({ url: alerts.webhook.url, timeoutMs: alerts.webhook.timeoutMs ?? 5000 }),
      retries: alerts.retries ?? 3,
      backoffMs: alerts.backoffMs ?? 1000,
    }),
  });
}

export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new MonitorConfigError(file, [{ path: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new MonitorConfigError(file, [{ path: '', message: `not JSON: ${(err as Error).message}` }]);
  }
}

/** `[NAME=]HOST:PORT` from the command line, as a config file target entry. */
export function targetFromArgument(argument: string): { name?: string; address: string } {
  const eq = argument.indexOf('=');
  if (eq > 0 && !argument.slice(0, eq).includes(':')) return { name: argument.slice(0, eq), address: argument.slice(eq + 1) };
  return { address: argument };
}

/** Keeps the targets whose labels match every `key=value` of `select` (sharding a shared file across monitors). */
export function selectTargets(config: MonitorConfig, select: Readonly<Record<string, string>>): MonitorConfig {
  const entries = Object.entries(select);
  return Object.freeze({ ...config, targets: Object.freeze(config.targets.filter((t) => entries.every(([k, v]) => t.labels[k] === v))) });
}
