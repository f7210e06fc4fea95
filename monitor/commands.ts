/**
 * The definitions of `handcheck monitor` and `handcheck monitor history`: what they parse and what
 * their `--help` says (config/command-line.ts). Kept apart from monitor/cli.ts so that listing the
 * commands loads no SQLite.
 */
import type { CommandSpec } from '../config/command-line.js';

export const monitorSpec = {
  command: 'monitor',
  args: '[NAME=]HOST:PORT ...',
  summary: 'watch appliances through TCP connects alone (docs/monitor.md)',
  description:
    'Watch appliances through TCP connects alone (docs/monitor.md). Targets come from the command line,\n--config FILE and service discovery; options act as defaults for every target. SIGHUP reloads\nthe targets and their settings from --config; discovery files are followed as they change.',
  options: {
    config: { type: 'string', value: 'FILE', help: 'JSON config: targets, defaults, http, db, alerts, discovery' },
    select: { type: 'string', multiple: true, value: 'LABEL=VALUE', help: "watch only the targets whose labels match (this monitor's shard)" },
    mode: { type: 'string', value: 'probe|hold', help: 'probe: connect every interval; hold: keep one connection (default probe)' },
    interval: { type: 'string', value: 'MS', help: 'probe: time between connects; hold: longest wait between reconnects (default 1000)' },
    grace: { type: 'string', value: 'MS', help: 'how long a fresh connection must stay open to count as up (default 300)' },
    timeout: { type: 'string', value: 'MS', help: 'how long to wait for the SYN/ACK (default 2000)' },
    rise: { type: 'string', value: 'N', help: 'consecutive ups to come up (default 1)' },
    fall: { type: 'string', value: 'N', help: 'consecutive failures to go down (default 1)' },
    keepalive: { type: 'string', value: 'MS', help: 'hold: idle time before TCP keepalive probes (default 1000)' },
    label: { type: 'string', multiple: true, value: 'K=V', help: 'a label for the targets given on the command line' },
    'file-sd': { type: 'string', multiple: true, value: 'FILE', help: "targets from a Prometheus file_sd file (.json, .yml or .yaml), read again when it changes" },
    'http-sd': { type: 'string', multiple: true, value: 'URL', help: "targets from a Prometheus http_sd URL, fetched every 60 s" },
    http: { type: 'string', value: 'HOST:PORT', help: 'serve the dashboard, /metrics and /probe' },
    'no-histogram': { type: 'boolean', default: false, help: 'no per-target connect histogram on /metrics (6 series a healthy target instead of 18)' },
    db: { type: 'string', default: process.env.HANDCHECK_MONITOR_DB, env: 'HANDCHECK_MONITOR_DB', value: 'FILE', help: 'SQLite history (default: in memory)' },
    retention: { type: 'string', value: 'DAYS', help: 'delete transitions older than this (default 30)' },
    'alert-command': { type: 'string', value: 'CMD', help: 'run /bin/sh -c CMD with each alert as JSON on stdin' },
    webhook: { type: 'string', value: 'URL', help: 'POST each alert as JSON' },
    'alert-retries': { type: 'string', value: 'N', help: 'attempts after a failed delivery (default 3)' },
    json: { type: 'boolean', default: false, help: 'JSON lines even on a terminal' },
    results: { type: 'boolean', default: false, help: 'with JSON lines: every result, not only transitions' },
    'log-level': { type: 'string', default: process.env.HANDCHECK_LOG_LEVEL ?? 'info', env: 'HANDCHECK_LOG_LEVEL', value: 'LEVEL', help: 'pino log level, logs on stderr' },
  },
} as const satisfies CommandSpec;

export const historySpec = {
  command: 'monitor history',
  args: 'NAME',
  summary: 'print the recorded transitions of a target',
  options: {
    db: { type: 'string', default: process.env.HANDCHECK_MONITOR_DB, env: 'HANDCHECK_MONITOR_DB', value: 'FILE', help: "the monitor's history database (must exist)" },
    limit: { type: 'string', default: '100', value: 'N', help: 'the newest N transitions' },
    json: { type: 'boolean', default: false, help: 'JSON lines instead of a table' },
  },
} as const satisfies CommandSpec;
