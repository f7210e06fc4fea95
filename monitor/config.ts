/**
 * The monitor's configuration: targets (name, address, labels, mode, timers, thresholds) from a JSON
 * file or the command line, validated once against a schema with defaults and no unknown keys, every
 * problem named by its JSON path, then frozen.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parseHostPort } from '../config/host-port.js';
import { schemaIssues } from '../config/issues.js';
import { isObject } from '../config/json-text.js';
import type { DiscoveryConfig } from './discovery.js';
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
  /** Targets with `modbus`: this many reboots within `windowMs` are a reboot loop, which holds until `windowMs` passes with none. */
  rebootLoop: Readonly<RebootLoopConfig>;
}

export interface RebootLoopConfig {
  count: number;
  windowMs: number;
}

/**
 * The target speaks Modbus TCP (a handcheck appliance): on a transition to a fault the monitor asks
 * it why, and on each up probe or hold connect reads its boot record. Off unless configured.
 */
export interface ModbusQueryConfig {
  /** Where to ask: a port whose service depends on no component, so a faulty appliance still answers. Default: the target's port. */
  port: number | undefined;
  unitId: number;
  timeoutMs: number;
}

export interface TargetConfig extends TargetSettings {
  modbus: ModbusQueryConfig | undefined;
  name: string;
  host: string;
  port: number;
  labels: Readonly<Record<string, string>>;
}

export interface WebhookConfig {
  url: string;
  /** Per attempt. */
  timeoutMs: number;
  /** Sent with every request, values already read from their file or variable. */
  headers: Readonly<Record<string, string>>;
}

export interface AlertmanagerConfig extends WebhookConfig {
  /** Firing alerts are posted again this often, as Prometheus does, so Alertmanager keeps them active. */
  resendMs: number;
  /** Added to every alert's labels (`severity`, `team`) for Alertmanager's routing. */
  labels: Readonly<Record<string, string>>;
}

export interface AlertConfig {
  /** Run through `/bin/sh -c`, the transition as JSON on stdin and in HANDCHECK_* variables. */
  command: string | undefined;
  webhook: WebhookConfig | undefined;
  alertmanager: AlertmanagerConfig | undefined;
  /** Attempts after the first failed one, for every sink. */
  retries: number;
  /** First wait between attempts; doubles each time up to `maxBackoffMs`. */
  backoffMs: number;
  maxBackoffMs: number;
  /** Deliveries a sink has in flight at once, never two for one target. */
  concurrency: number;
  /** Alerts a sink may owe; past it the oldest is dropped. */
  queueLimit: number;
  /** Where people reach this monitor's dashboard; alerts link to it. Default: from `http`. */
  externalUrl: string | undefined;
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
  /** Targets from Prometheus-format service discovery, besides `targets`. */
  discovery: DiscoveryConfig;
  /** The labels every target gets unless it sets its own (discovered targets too). */
  defaultLabels: Readonly<Record<string, string>>;
  /** `defaults.modbus`: what every target (discovered ones too) is asked with unless it says otherwise; undefined: not asked. */
  defaultModbus: Readonly<Partial<ModbusQueryConfig>> | undefined;
}

export const defaultSettings: Readonly<TargetSettings> = Object.freeze({
  mode: 'probe',
  intervalMs: 1000,
  graceMs: 300,
  connectTimeoutMs: 2000,
  rise: 1,
  fall: 1,
  keepAliveMs: 1000,
  rebootLoop: Object.freeze({ count: 3, windowMs: 3_600_000 }),
});

/**
 * Label names a target cannot take: the ones the metrics use themselves, and the ones Prometheus
 * gives meaning to (`job` and `instance` are attached by the scrape, `__*` names are reserved to it).
 */
export const reservedLabels = new Set(['target', 'host', 'port', 'mode', 'state', 'from', 'to', 'result', 'le', 'sink', 'outcome', 'job', 'instance', 'alertname']);

/** Why a label name cannot be a target's, or undefined when it can. */
export function reservedLabelReason(key: string): string | undefined {
  if (key.startsWith('__')) return `"${key}" starts with "__", which Prometheus reserves for its own labels`;
  if (reservedLabels.has(key)) return `"${key}" is a label the metrics or Prometheus use themselves (reserved: ${[...reservedLabels].join(', ')}, __*)`;
  return undefined;
}

/** A Modbus query with its defaults filled in: unit 1 (the firmware's), 1 s, the target's own port. */
export function resolveModbusQuery(given: Readonly<Partial<ModbusQueryConfig>>): ModbusQueryConfig {
  return Object.freeze({ port: given.port, unitId: given.unitId ?? 1, timeoutMs: given.timeoutMs ?? 1000 });
}

export const modbusBounds = { port: [1, 65535], unitId: [0, 255], timeoutMs: [1, 60_000] } as const;

const settingsProperties = {
  mode: { enum: ['probe', 'hold'] },
  intervalMs: { type: 'integer', minimum: 10, maximum: 3_600_000 },
  graceMs: { type: 'integer', minimum: 0, maximum: 60_000 },
  connectTimeoutMs: { type: 'integer', minimum: 1, maximum: 120_000 },
  rise: { type: 'integer', minimum: 1, maximum: 100 },
  fall: { type: 'integer', minimum: 1, maximum: 100 },
  keepAliveMs: { type: 'integer', minimum: 1000, maximum: 3_600_000 },
  rebootLoop: {
    type: 'object',
    additionalProperties: false,
    properties: {
      // One reboot is an event (its own alert); a loop takes at least two.
      count: { type: 'integer', minimum: 2, maximum: 1000 },
      windowMs: { type: 'integer', minimum: 1000, maximum: 604_800_000 },
    },
  },
} as const;

const modbusQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    port: { type: 'integer', minimum: modbusBounds.port[0], maximum: modbusBounds.port[1] },
    unitId: { type: 'integer', minimum: modbusBounds.unitId[0], maximum: modbusBounds.unitId[1] },
    timeoutMs: { type: 'integer', minimum: modbusBounds.timeoutMs[0], maximum: modbusBounds.timeoutMs[1] },
  },
} as const;

const labels = {
  type: 'object',
  propertyNames: { pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$', description: 'a label name matching [a-zA-Z_][a-zA-Z0-9_]* (Prometheus label syntax)' },
  additionalProperties: { type: 'string', maxLength: 200 },
} as const;

/** A header value: in clear, or read at start from a variable or a file (a secret kept out of the config). */
type HeaderValue = string | { env: string; prefix?: string } | { file: string; prefix?: string };

const headers = {
  type: 'object',
  propertyNames: { pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description: 'an HTTP header name' },
  additionalProperties: {
    oneOf: [
      { type: 'string', pattern: '^[^\\r\\n]*$', description: 'a header value on one line' },
      { type: 'object', additionalProperties: false, required: ['env'], properties: { env: { type: 'string', minLength: 1 }, prefix: { type: 'string', pattern: '^[^\\r\\n]*$' } } },
      { type: 'object', additionalProperties: false, required: ['file'], properties: { file: { type: 'string', minLength: 1 }, prefix: { type: 'string', pattern: '^[^\\r\\n]*$' } } },
    ],
  },
} as const;

const endpoint = {
  url: { type: 'string', pattern: '^https?://' },
  timeoutMs: { type: 'integer', minimum: 1, maximum: 600_000 },
  headers,
} as const;

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['targets'],
  properties: {
    $schema: { type: 'string' },
    defaults: { type: 'object', additionalProperties: false, properties: { ...settingsProperties, labels, modbus: modbusQuery } },
    targets: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['address'],
        properties: { name: { type: 'string', minLength: 1, maxLength: 200 }, address: { type: 'string' }, labels, modbus: modbusQuery, ...settingsProperties },
      },
    },
    http: { type: 'string' },
    db: { type: 'string', minLength: 1 },
    retentionDays: { type: 'number', exclusiveMinimum: 0 },
    connectHistogram: { type: 'boolean' },
    discovery: {
      type: 'object',
      additionalProperties: false,
      properties: {
        files: {
          type: 'array',
          items: {
            type: 'string',
            pattern: '\\.([jJ][sS][oO][nN]|[yY][aA]?[mM][lL])$',
            description: 'a file name ending in .json, .yml or .yaml (its format is picked by the extension, as Prometheus file_sd does)',
          },
        },
        fileRefreshMs: { type: 'integer', minimum: 1000 },
        http: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['url'],
            properties: { url: { type: 'string', pattern: '^https?://' }, refreshMs: { type: 'integer', minimum: 1000 } },
          },
        },
      },
    },
    alerts: {
      type: 'object',
      additionalProperties: false,
      properties: {
        command: { type: 'string', minLength: 1 },
        webhook: { type: 'object', additionalProperties: false, required: ['url'], properties: endpoint },
        alertmanager: {
          type: 'object',
          additionalProperties: false,
          required: ['url'],
          properties: { ...endpoint, resendMs: { type: 'integer', minimum: 1000, maximum: 3_600_000 }, labels },
        },
        retries: { type: 'integer', minimum: 0, maximum: 20 },
        backoffMs: { type: 'integer', minimum: 0, maximum: 3_600_000 },
        maxBackoffMs: { type: 'integer', minimum: 0, maximum: 86_400_000 },
        concurrency: { type: 'integer', minimum: 1, maximum: 64 },
        queueLimit: { type: 'integer', minimum: 1, maximum: 1_000_000 },
        externalUrl: { type: 'string', pattern: '^https?://' },
      },
    },
  },
} as const;

const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true });
const validate = ajv.compile(schema);

/** Settings as a file gives them: any of them, and any part of `rebootLoop`. */
type SettingsFile = Partial<Omit<TargetSettings, 'rebootLoop'>> & { rebootLoop?: Partial<RebootLoopConfig> };

export interface ConfigFile {
  defaults?: SettingsFile & { labels?: Record<string, string>; modbus?: Partial<ModbusQueryConfig> };
  targets: Array<SettingsFile & { name?: string; address: string; labels?: Record<string, string>; modbus?: Partial<ModbusQueryConfig> }>;
  http?: string;
  db?: string;
  retentionDays?: number;
  connectHistogram?: boolean;
  discovery?: { files?: string[]; fileRefreshMs?: number; http?: Array<{ url: string; refreshMs?: number }> };
  alerts?: {
    command?: string;
    webhook?: EndpointFile;
    alertmanager?: EndpointFile & { resendMs?: number; labels?: Record<string, string> };
    retries?: number;
    backoffMs?: number;
    maxBackoffMs?: number;
    concurrency?: number;
    queueLimit?: number;
    externalUrl?: string;
  };
}

interface EndpointFile {
  url: string;
  timeoutMs?: number;
  headers?: Record<string, HeaderValue>;
}

/** Reads each header's value where the config says it is; a missing variable or unreadable file is an issue at its path. */
function resolveHeaders(given: Record<string, HeaderValue> | undefined, path: string, issues: ConfigIssue[]): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(given ?? {})) {
    if (typeof value === 'string') {
      out[name] = value;
      continue;
    }
    let secret: string | undefined;
    if ('env' in value) {
      secret = process.env[value.env];
      if (secret === undefined) issues.push({ path: `${path}/${name}/env`, message: `the variable ${value.env} is not set` });
    } else {
      try {
        // The file's last line break is the editor's, not the secret's.
        secret = readFileSync(value.file, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        issues.push({ path: `${path}/${name}/file`, message: `cannot read ${value.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      }
    }
    if (secret === undefined) continue;
    if (/[\r\n]/.test(secret)) issues.push({ path: `${path}/${name}`, message: 'the value holds a line break, which cannot go in a header' });
    else out[name] = `${value.prefix ?? ''}${secret}`;
  }
  return Object.freeze(out);
}

/** `http://HOST:PORT` of the monitor's own HTTP server, when it names one people can reach. */
function externalUrlOf(http: string | undefined): string | undefined {
  const parsed = http ? parseHostPort(http, { allowPortZero: true }) : undefined;
  if (!parsed || parsed.port === 0) return undefined;
  const host = parsed.host === '0.0.0.0' || parsed.host === '::' ? hostname() : parsed.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${parsed.port}`;
}

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
    const loop = { ...(isObject(defaults.rebootLoop) ? defaults.rebootLoop : {}), ...(isObject(entry.rebootLoop) ? entry.rebootLoop : {}) };
    const windowMs = loop.windowMs ?? defaultSettings.rebootLoop.windowMs;
    const readsBoots = entry.modbus !== undefined || defaults.modbus !== undefined;
    if (readsBoots && typeof windowMs === 'number' && typeof intervalMs === 'number' && windowMs <= intervalMs) {
      issues.push({ path: `/targets/${i}/rebootLoop/windowMs`, message: `${windowMs} ms must be longer than intervalMs (${intervalMs} ms): a window shorter than the time between two reads never holds two reboots` });
    }
    // In `defaults` it is for whichever targets ask; set on a target that does not, it would do nothing.
    if (entry.rebootLoop !== undefined && entry.modbus === undefined && defaults.modbus === undefined) {
      issues.push({ path: `/targets/${i}/rebootLoop`, message: 'needs modbus: the monitor learns of reboots from the boot record it reads over Modbus' });
    }
  });
  if (typeof document.http === 'string' && document.http !== '' && !parseHostPort(document.http, { allowPortZero: true })) issues.push({ path: '/http', message: `"${document.http}" is not HOST:PORT` });
  return issues;
}

/** Validates a parsed config document and resolves defaults; throws MonitorConfigError naming every problem. */
export function resolveConfig(document: unknown, source: string): MonitorConfig {
  const valid = validate(document);
  const issues = [...(valid ? [] : schemaIssues(validate.errors ?? [])), ...semanticIssues(document)];
  const file = document as ConfigFile;
  // Secrets are read only from a document whose shape is right.
  const alerts = (valid ? file.alerts : undefined) ?? {};
  const webhookHeaders = resolveHeaders(alerts.webhook?.headers, '/alerts/webhook/headers', issues);
  const alertmanagerHeaders = resolveHeaders(alerts.alertmanager?.headers, '/alerts/alertmanager/headers', issues);
  for (const key of Object.keys(alerts.alertmanager?.labels ?? {})) {
    if (key === 'alertname' || key === 'target') issues.push({ path: `/alerts/alertmanager/labels/${key}`, message: `"${key}" is set by the monitor on every alert` });
  }
  if (issues.length > 0) throw new MonitorConfigError(source, issues);
  const { labels: defaultLabels = {}, ...defaults } = file.defaults ?? {};
  const { modbus: defaultModbus, rebootLoop: defaultLoop, ...defaultRest } = defaults;
  const resolvedDefaults: TargetSettings = { ...defaultSettings, ...defaultRest, rebootLoop: Object.freeze({ ...defaultSettings.rebootLoop, ...defaultLoop }) };
  const targets = file.targets.map((entry): TargetConfig => {
    const { name, address, labels: own = {}, modbus: ownModbus, rebootLoop: ownLoop, ...settings } = entry;
    const { host, port } = parseHostPort(address)!;
    const modbus = defaultModbus || ownModbus ? resolveModbusQuery({ ...defaultModbus, ...ownModbus }) : undefined;
    const rebootLoop = Object.freeze({ ...resolvedDefaults.rebootLoop, ...ownLoop });
    return Object.freeze({ ...resolvedDefaults, ...settings, rebootLoop, name: name ?? address, host, port, labels: Object.freeze({ ...defaultLabels, ...own }), modbus });
  });
  return Object.freeze({
    targets: Object.freeze(targets),
    defaults: Object.freeze(resolvedDefaults),
    http: file.http || undefined,
    db: file.db,
    retentionDays: file.retentionDays ?? 30,
    connectHistogram: file.connectHistogram ?? true,
    discovery: Object.freeze({
      files: Object.freeze([...(file.discovery?.files ?? [])]),
      fileRefreshMs: file.discovery?.fileRefreshMs ?? 300_000,
      http: Object.freeze((file.discovery?.http ?? []).map((h) => Object.freeze({ url: h.url, refreshMs: h.refreshMs ?? 60_000 }))),
    }),
    defaultLabels: Object.freeze({ ...defaultLabels }),
    defaultModbus: defaultModbus && Object.freeze({ ...defaultModbus }),
    alerts: Object.freeze({
      command: alerts.command,
      webhook: alerts.webhook && Object.freeze({ url: alerts.webhook.url, timeoutMs: alerts.webhook.timeoutMs ?? 5000, headers: webhookHeaders }),
      alertmanager:
        alerts.alertmanager &&
        Object.freeze({
          url: alerts.alertmanager.url.replace(/\/+$/, ''),
          timeoutMs: alerts.alertmanager.timeoutMs ?? 5000,
          headers: alertmanagerHeaders,
          resendMs: alerts.alertmanager.resendMs ?? 60_000,
          labels: Object.freeze({ ...alerts.alertmanager.labels }),
        }),
      retries: alerts.retries ?? 3,
      backoffMs: alerts.backoffMs ?? 1000,
      maxBackoffMs: alerts.maxBackoffMs ?? 60_000,
      concurrency: alerts.concurrency ?? 4,
      queueLimit: alerts.queueLimit ?? 1000,
      externalUrl: alerts.externalUrl?.replace(/\/+$/, '') ?? externalUrlOf(file.http),
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
