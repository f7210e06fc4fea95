/**
 * The multi-target exporter pattern, as blackbox_exporter has it: `GET /probe?target=HOST:PORT` makes
 * one classified connect and answers its metrics, so Prometheus does the scheduling (its scrape
 * interval is the probe interval), shards a fleet across monitors with `hashmod` relabeling, and
 * federates. The target is whatever the scrape asks for; the monitor keeps no state of it.
 *
 * Parameters: `target` (required), `mode` (`probe`, the only one), `grace_ms`, `timeout_ms`. Hold mode
 * is refused, not emulated: a connection held between scrapes would make the answer depend on who
 * scraped before (two Prometheus servers, a curl by hand, a hashmod change), would outlive the
 * scrapes that asked for it, and would make the appliance reuse its verdict (claim 5) for the fresh
 * connect that was to check it, while the news it hears first still waits for the next scrape.
 * blackbox_exporter's maintainers keep it stateless for the same reasons (prometheus/blackbox_exporter#364).
 * Hold targets belong to the built-in scheduler, fed by the same file_sd files. The connect
 * timeout is cut to fit Prometheus's scrape timeout (the `X-Prometheus-Scrape-Timeout-Seconds`
 * header) less the grace window, so an answer always arrives before Prometheus gives up.
 */
import { parseHostPort } from '../config/host-port.js';
import type { TargetSettings } from './config.js';
import { MonitorProbeParamError } from './errors.js';
import { probe } from './probe.js';

export interface ProbeRequest {
  host: string;
  port: number;
  graceMs: number;
  connectTimeoutMs: number;
}

/** Room left for Prometheus to receive the answer inside its own timeout, ms. */
const scrapeMarginMs = 250;

function integerParam(params: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const value = params.get(name);
  if (value === null) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new MonitorProbeParamError(name, `must be an integer in ${min}-${max}, got "${value}"`);
  return n;
}

/** Reads and checks the query of a `/probe` request; throws MonitorProbeParamError naming the bad parameter. */
export function probeRequest(params: URLSearchParams, defaults: Pick<TargetSettings, 'graceMs' | 'connectTimeoutMs'>, scrapeTimeoutHeader: string | undefined): ProbeRequest {
  const target = params.get('target');
  if (!target) throw new MonitorProbeParamError('target', 'is required: /probe?target=HOST:PORT');
  const address = parseHostPort(target);
  if (!address) throw new MonitorProbeParamError('target', `"${target}" is not HOST:PORT with a port in 1-65535 (IPv6 as [::1]:502)`);
  const mode = params.get('mode') ?? 'probe';
  if (mode === 'hold') {
    throw new MonitorProbeParamError(
      'mode',
      '"hold" is not served by /probe, which keeps nothing between scrapes: hold targets belong to the built-in scheduler (a config target with "mode": "hold", or __handcheck_mode: hold in a file_sd file), whose /metrics Prometheus scrapes (docs/monitor.md, "Why /probe does not hold")',
    );
  }
  if (mode !== 'probe') throw new MonitorProbeParamError('mode', `"${mode}" is not a mode of /probe; the only one is probe`);
  const graceMs = integerParam(params, 'grace_ms', 0, 60_000) ?? defaults.graceMs;
  let connectTimeoutMs = integerParam(params, 'timeout_ms', 1, 120_000) ?? defaults.connectTimeoutMs;
  const scrapeTimeoutS = Number(scrapeTimeoutHeader);
  if (scrapeTimeoutHeader !== undefined && scrapeTimeoutS > 0) {
    const budgetMs = scrapeTimeoutS * 1000 - scrapeMarginMs;
    if (graceMs >= budgetMs) throw new MonitorProbeParamError('grace_ms', `${graceMs} ms does not fit Prometheus's scrape timeout of ${scrapeTimeoutS} s`);
    connectTimeoutMs = Math.max(1, Math.min(connectTimeoutMs, Math.floor(budgetMs - graceMs)));
  }
  return { host: address.host, port: address.port, graceMs, connectTimeoutMs };
}

/** Makes the probe and renders its metrics in the text exposition format. */
export async function probeMetrics(request: ProbeRequest, signal?: AbortSignal): Promise<string> {
  const started = performance.now();
  const outcome = await probe({ ...request, ...(signal ? { signal } : {}) });
  const seconds = (performance.now() - started) / 1000;
  const lines = [
    '# HELP probe_success 1 when the connect was classified up, 0 otherwise',
    '# TYPE probe_success gauge',
    `probe_success ${outcome.result === 'up' ? 1 : 0}`,
    '# HELP probe_duration_seconds how long the whole probe took (connect, grace window, any second connect)',
    '# TYPE probe_duration_seconds gauge',
    `probe_duration_seconds ${seconds}`,
    // No reason label: its figures change at every probe, and each change would be a new series.
    '# HELP handcheck_probe_result value 1, labelled with the classification and the errno behind it',
    '# TYPE handcheck_probe_result gauge',
    `handcheck_probe_result{result="${outcome.result}",errno="${outcome.errno ?? ''}"} 1`,
    '# HELP handcheck_probe_connect_duration_seconds time from SYN to SYN/ACK (or to the failure of the connect)',
    '# TYPE handcheck_probe_connect_duration_seconds gauge',
    `handcheck_probe_connect_duration_seconds ${outcome.connectMs / 1000}`,
  ];
  if (outcome.cutAfterMs !== undefined) {
    lines.push(
      '# HELP handcheck_probe_cut_after_seconds for reset and closed: how long after the handshake the connection was cut',
      '# TYPE handcheck_probe_cut_after_seconds gauge',
      `handcheck_probe_cut_after_seconds ${outcome.cutAfterMs / 1000}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
