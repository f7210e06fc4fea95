/**
 * Errors of the monitor. Every code is listed in docs/errors.md.
 */
import { HandcheckError } from '../config/errors.js';
import type { ConfigIssue } from '../config/issues.js';

export type { ConfigIssue };

/** The monitor's configuration (file or command line) is invalid; `issues` names every problem. */
export class MonitorConfigError extends HandcheckError {
  readonly source: string;
  readonly issues: readonly ConfigIssue[];

  constructor(source: string, issues: readonly ConfigIssue[]) {
    super('ERR_MONITOR_CONFIG', `${source}: ${issues.map((i) => `${i.path || '/'}: ${i.message}`).join('; ')}`);
    this.source = source;
    this.issues = issues;
  }
}

/** A service discovery source (file or URL) gave something that is not a list of valid target groups; `issues` names every problem. */
export class MonitorDiscoveryError extends HandcheckError {
  readonly source: string;
  readonly issues: readonly ConfigIssue[];

  constructor(source: string, issues: readonly ConfigIssue[]) {
    super('ERR_MONITOR_DISCOVERY', `${source}: ${issues.map((i) => `${i.path || '/'}: ${i.message}`).join('; ')}`);
    this.source = source;
    this.issues = issues;
  }
}

/** The history database cannot be opened or has a schema this version does not know. */
export class MonitorHistoryError extends HandcheckError {
  readonly file: string;

  constructor(file: string, message: string, options: { cause?: unknown } = {}) {
    super('ERR_MONITOR_HISTORY', `${file}: ${message}`, options);
    this.file = file;
  }
}

/** One delivery attempt of an alert failed (the command exited non-zero, the webhook did not answer 2xx). */
export class AlertDeliveryError extends HandcheckError {
  readonly sink: string;

  constructor(sink: string, message: string, options: { cause?: unknown } = {}) {
    super('ERR_MONITOR_ALERT', `${sink}: ${message}`, options);
    this.sink = sink;
  }
}

/** An in-flight probe or delivery abandoned because the monitor is closing. */
export class MonitorClosedError extends HandcheckError {
  constructor(what: string) {
    super('ERR_MONITOR_CLOSED', `${what}: the monitor is closing`);
  }
}

/** A `/probe` request with a missing or bad parameter (HTTP 400). */
export class MonitorProbeParamError extends HandcheckError {
  readonly param: string;

  constructor(param: string, message: string) {
    super('ERR_MONITOR_PROBE_PARAM', `${param} ${message}`);
    this.param = param;
  }
}

/** The appliance did not answer a question the monitor asked it over Modbus (why it fails, which boot it is in). */
export class ApplianceQueryError extends HandcheckError {
  readonly address: string;

  constructor(address: string, message: string) {
    super('ERR_MONITOR_APPLIANCE_QUERY', `${address}: ${message}`);
    this.address = address;
  }
}
