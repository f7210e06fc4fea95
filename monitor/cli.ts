/**
 * `handcheck monitor`: watch targets until SIGINT/SIGTERM, reloading them on SIGHUP; `handcheck
 * monitor history NAME`: print a target's recorded transitions. Their options and help are defined
 * in monitor/commands.ts.
 */
import pino from 'pino';
import { parseCommand } from '../config/command-line.js';
import { HandcheckError } from '../config/errors.js';
import { formatHostPort, parseHostPort } from '../config/host-port.js';
import { historySpec, monitorSpec } from './commands.js';
import { type ConfigFile, type MonitorConfig, type TargetSettings, readConfigFile, resolveConfig, selectTargets, targetFromArgument } from './config.js';
import { TargetSources } from './discovery.js';
import { MonitorConfigError } from './errors.js';
import { History } from './history.js';
import { type MonitorHttpServer, startMonitorHttp } from './http.js';
import { Monitor } from './monitor.js';
import { jsonLines, liveTable } from './terminal.js';

class MonitorUsageError extends HandcheckError {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

function pairs(values: string[] | undefined, option: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const value of values ?? []) {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new MonitorUsageError(`${option} must be KEY=VALUE, got "${value}"`);
    out[value.slice(0, eq)] = value.slice(eq + 1);
  }
  return out;
}

function integer(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new MonitorUsageError(`${option} must be a non-negative integer, got "${value}"`);
  return n;
}

async function history(argv: string[]): Promise<number> {
  const parsed = parseCommand(historySpec, argv);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new MonitorUsageError('monitor history needs exactly one target NAME');
  if (!values.db) throw new MonitorUsageError('monitor history needs --db FILE (or HANDCHECK_MONITOR_DB)');
  const name = positionals[0]!;
  const store = History.open(values.db, { readOnly: true });
  try {
    const transitions = store.forTarget(name, { limit: integer(values.limit, '--limit') ?? 100 });
    if (values.json) {
      for (const t of transitions) process.stdout.write(`${JSON.stringify({ ...t, at: new Date(t.at).toISOString() })}\n`);
    } else if (transitions.length > 0) {
      const rows = [['TIME', 'FROM', 'TO', 'CONNECT', 'REASON']];
      for (const t of transitions) rows.push([new Date(t.at).toISOString(), t.from, t.to, t.connectMs === undefined ? '' : `${t.connectMs.toFixed(2)}ms`, t.reason]);
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      process.stdout.write(`${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')}\n`);
    }
    if (transitions.length === 0) {
      process.stderr.write(`handcheck monitor history: no transitions of "${name}" in ${values.db}\n`);
      return 1;
    }
    return 0;
  } finally {
    store.close();
  }
}

type MonitorValues = NonNullable<ReturnType<typeof parseCommand<typeof monitorSpec.options>>>['values'];

/** The config file (read again on SIGHUP) with the command line over it, resolved and sharded. */
function loadConfig(values: MonitorValues, positionals: string[]): MonitorConfig {
  const document = (values.config ? readConfigFile(values.config) : { targets: [] }) as ConfigFile;
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw new MonitorConfigError(values.config ?? 'command line', [{ path: '', message: 'must be a JSON object' }]);
  // Command-line settings act as defaults: a target in the file that sets its own keeps it.
  const settings: Partial<TargetSettings> = {};
  if (values.mode !== undefined) {
    if (values.mode !== 'probe' && values.mode !== 'hold') throw new MonitorUsageError(`--mode must be probe or hold, got "${values.mode}"`);
    settings.mode = values.mode;
  }
  const numeric: Array<[keyof Omit<TargetSettings, 'mode' | 'rebootLoop'>, string | undefined, string]> = [
    ['intervalMs', values.interval, '--interval'],
    ['graceMs', values.grace, '--grace'],
    ['connectTimeoutMs', values.timeout, '--timeout'],
    ['rise', values.rise, '--rise'],
    ['fall', values.fall, '--fall'],
    ['keepAliveMs', values.keepalive, '--keepalive'],
  ];
  for (const [key, value, option] of numeric) {
    const n = integer(value, option);
    if (n !== undefined) settings[key] = n;
  }
  const labels = pairs(values.label, '--label');
  const fromArgs = positionals.map((p) => ({ ...targetFromArgument(p), ...(Object.keys(labels).length > 0 ? { labels } : {}) }));
  const discovery = document.discovery ?? {};
  const merged: ConfigFile = {
    ...document,
    defaults: { ...document.defaults, ...settings },
    targets: [...(Array.isArray(document.targets) ? document.targets : []), ...fromArgs],
    ...(values.http !== undefined ? { http: values.http } : {}),
    ...(values.db !== undefined ? { db: values.db } : {}),
    ...(values.retention !== undefined ? { retentionDays: Number(values.retention) } : {}),
    ...(values['no-histogram'] ? { connectHistogram: false } : {}),
    ...(values['file-sd'] || values['http-sd']
      ? {
          discovery: {
            ...discovery,
            files: [...(discovery.files ?? []), ...(values['file-sd'] ?? [])],
            http: [...(discovery.http ?? []), ...(values['http-sd'] ?? []).map((url) => ({ url }))],
          },
        }
      : {}),
  };
  if (values['alert-command'] !== undefined || values.webhook !== undefined || values['alert-retries'] !== undefined) {
    merged.alerts = {
      ...document.alerts,
      ...(values['alert-command'] !== undefined ? { command: values['alert-command'] } : {}),
      ...(values.webhook !== undefined ? { webhook: { ...document.alerts?.webhook, url: values.webhook } } : {}),
      ...(values['alert-retries'] !== undefined ? { retries: integer(values['alert-retries'], '--alert-retries')! } : {}),
    };
  }
  const source = values.config ? `${values.config} with the command line` : 'command line';
  return selectTargets(resolveConfig(merged, source), pairs(values.select, '--select'));
}

export async function monitorCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'history') return history(argv.slice(1));
  const parsed = parseCommand(monitorSpec, argv);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const config = loadConfig(values, positionals);
  const select = pairs(values.select, '--select');
  const discovering = config.discovery.files.length + config.discovery.http.length > 0;
  // With an HTTP endpoint and no targets of its own, the monitor only answers /probe (Prometheus schedules).
  if (config.targets.length === 0 && !discovering && !config.http) {
    throw new MonitorUsageError(values.select ? `no target of ${values.config ?? 'the command line'} matches --select ${values.select.join(' ')}` : 'monitor needs at least one [NAME=]HOST:PORT, --config FILE, --file-sd, --http-sd or --http (for /probe)');
  }

  const logger = pino({ level: values['log-level'] }, pino.destination(2));
  const monitor = Monitor.start({ config, logger });
  const sharded = (targets: MonitorConfig['targets']): MonitorConfig['targets'] => selectTargets({ ...config, targets }, select).targets;
  const sources = new TargetSources({
    targets: config.targets,
    discovery: config.discovery,
    defaults: { settings: config.defaults, labels: config.defaultLabels, modbus: config.defaultModbus },
    apply: (targets) => monitor.setTargets(sharded(targets)),
    onFailure: (source) => monitor.metrics.discoveryFailure(source),
    logger: logger.child({ subsystem: 'discovery' }),
  });
  let http: MonitorHttpServer | undefined;
  try {
    await sources.start();
    if (config.http) {
      const { host, port } = parseHostPort(config.http, { allowPortZero: true })!;
      http = await startMonitorHttp({ monitor, host, port, logger: logger.child({ subsystem: 'http' }) });
      const a = http.address;
      process.stderr.write(`handcheck monitor: dashboard on http://${formatHostPort({ host: a.address, port: a.port })}/ (metrics at /metrics, probes at /probe)\n`);
    }
  } catch (err) {
    sources.close();
    await monitor.close();
    throw err;
  }
  process.stderr.write(`handcheck monitor: ${monitor.targets.length} targets${config.db ? `, history in ${config.db}` : ''}\n`);
  const stopOutput = process.stdout.isTTY && !values.json ? liveTable(monitor, process.stdout) : jsonLines(monitor, process.stdout, values.results);

  // SIGHUP: the targets and their settings again from --config (and the command line); what needs a
  // restart (http, db, alerts, discovery sources) is left as it is. A config that no longer
  // resolves is logged and changes nothing.
  const reload = (): void => {
    try {
      const next = loadConfig(values, positionals);
      sources.setOwn(next.targets);
      logger.info({ targets: monitor.targets.length }, 'reloaded the config on SIGHUP');
    } catch (err) {
      logger.error({ err }, 'SIGHUP: the config does not load; keeping the targets as they are');
    }
  };
  process.on('SIGHUP', reload);

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      process.off('SIGHUP', reload);
      stopOutput();
      sources.close();
      void (async () => {
        await http?.close();
        await monitor.close();
        logger.flush();
        resolveExit(0);
      })().catch((err: unknown) => {
        logger.error({ err }, 'monitor shutdown failed');
        resolveExit(1);
      });
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
