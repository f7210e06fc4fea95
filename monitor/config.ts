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
  /** `HOST:PORT` for /metrics and the dashboard; undefined: no HTTP server. */
  http: string | undefined;
  /** SQLite file for the history; undefined: history in memory only. */
  db: string | undefined;
  retentionDays: number;
  alerts: AlertConfig;
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

/** Label names the metrics use themselves, so a target cannot take them. */
export const reservedLabels = new Set(['target', 'host', 'port', 'mode', 'state', 'from', 'to', 'result', 'le', 'sink', 'outcome']);

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
  alerts?: { command?: string; webhook?: { url: string; timeoutMs?: number }; retries?: number; backoffMs?: number };
}

/** Validates a parsed config document and resolves defaults; throws MonitorConfigError naming every problem. */
export function resolveConfig(document: unknown, source: string): MonitorConfig {
  if (!validate(document)) throw new MonitorConfigError(source, schemaIssues(validate.errors ?? []));
  const file = document as unknown as ConfigFile;
  const issues: ConfigIssue[] = [];
  const { labels: defaultLabels = {}, ...defaults } = file.defaults ?? {};
  const names = new Map<string, number>();
  const targets: TargetConfig[] = [];
  file.targets.forEach((entry, i) => {
    const { name: given, address, labels: own = {}, ...settings } = entry;
    const parsed = parseHostPort(address);
    if (!parsed) issues.push({ path: `/targets/${i}/address`, message: `"${address}" is not HOST:PORT with a port in 1-65535` });
    const name = given ?? address;
    const earlier = names.get(name);
    if (earlier !== undefined) issues.push({ path: `/targets/${i}/name`, message: `"${name}" is already the name of /targets/${earlier}` });
    names.set(name, i);
    const merged = { ...defaultLabels, ...own };
    for (const key of Object.keys(merged)) {
      if (reservedLabels.has(key)) issues.push({ path: `/targets/${i}/labels/${key}`, message: `"${key}" is a label the metrics use themselves (reserved: ${[...reservedLabels].join(', ')})` });
    }
    const resolved: TargetConfig = {
      ...defaultSettings,
      ...defaults,
      ...settings,
      name,
      host: parsed?.host ?? '',
      port: parsed?.port ?? 0,
      labels: Object.freeze(merged),
    };
    if (resolved.mode === 'probe' && resolved.graceMs >= resolved.intervalMs) {
      issues.push({ path: `/targets/${i}/graceMs`, message: `${resolved.graceMs} ms must be shorter than intervalMs (${resolved.intervalMs} ms) in probe mode` });
    }
    targets.push(Object.freeze(resolved));
  });
  if (file.http !== undefined && file.http !== '' && !parseHostPort(file.http, { allowPortZero: true })) issues.push({ path: '/http', message: `"${file.http}" is not HOST:PORT` });
  if (issues.length > 0) throw new MonitorConfigError(source, issues);
  const alerts = file.alerts ?? {};
  return Object.freeze({
    targets: Object.freeze(targets),
    http: file.http || undefined,
    db: file.db,
    retentionDays: file.retentionDays ?? 30,
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
