/**
 * Where alerts go: a command, a webhook, Alertmanager's v2 API. Each delivers one alert per attempt
 * and rejects with AlertDeliveryError when the attempt failed; monitor/alerts.ts decides when to try.
 */
import { spawn } from 'node:child_process';
import type { AlertmanagerConfig, WebhookConfig } from './config.js';
import type { Alert, AlertSink } from './alerts.js';
import { AlertDeliveryError } from './errors.js';

/** Runs `/bin/sh -c COMMAND` with the alert as JSON on stdin and as HANDCHECK_* variables. */
export class CommandSink implements AlertSink {
  readonly name = 'command';

  constructor(
    private readonly command: string,
    private readonly timeoutMs = 10_000,
  ) {}

  deliver(alert: Alert, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', this.command], {
        stdio: ['pipe', 'ignore', 'pipe'],
        signal,
        timeout: this.timeoutMs,
        env: {
          ...process.env,
          HANDCHECK_ALERT_ID: alert.id,
          HANDCHECK_STATUS: alert.status,
          HANDCHECK_KIND: alert.kind,
          HANDCHECK_TARGET: alert.target,
          HANDCHECK_ADDRESS: `${alert.host.includes(':') ? `[${alert.host}]` : alert.host}:${alert.port}`,
          HANDCHECK_FROM: alert.from,
          HANDCHECK_TO: alert.to,
          HANDCHECK_HEALTHY: alert.healthy ? '1' : '0',
          HANDCHECK_REASON: alert.reason,
          HANDCHECK_CAUSE: alert.cause ?? '',
          HANDCHECK_AT: alert.at,
          HANDCHECK_STARTS_AT: alert.startsAt,
          HANDCHECK_ENDS_AT: alert.endsAt ?? '',
        },
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        if (stderr.length < 2000) stderr += chunk.toString();
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(`${JSON.stringify(alert)}\n`);
      child.once('error', (err) => reject(signal.aborted ? signal.reason : new AlertDeliveryError(this.name, `cannot run "${this.command}": ${err.message}`, { cause: err })));
      child.once('close', (code, killed) => {
        if (code === 0) resolve();
        else if (signal.aborted) reject(signal.reason);
        else reject(new AlertDeliveryError(this.name, `"${this.command}" ${killed ? `was killed by ${killed}` : `exited with ${code}`}${stderr ? `: ${stderr.trim()}` : ''}`));
      });
    });
  }
}

async function post(sink: string, url: string, headers: Readonly<Record<string, string>>, timeoutMs: number, body: unknown, signal: AbortSignal): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', 'user-agent': 'handcheck-monitor' },
      body: JSON.stringify(body),
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    });
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    const cause = (err as Error & { cause?: { code?: string } }).cause;
    const what = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (cause?.code ?? (err as Error).message);
    throw new AlertDeliveryError(sink, `POST ${url} failed: ${what}`, { cause: err });
  }
  if (response.ok) {
    await response.body?.cancel();
    return;
  }
  const text = (await response.text().catch(() => '')).trim().slice(0, 200);
  throw new AlertDeliveryError(sink, `POST ${url} answered ${response.status}${text ? `: ${text}` : ''}`);
}

/** POSTs the alert as JSON, with the configured headers; any 2xx answer is a delivery. */
export class WebhookSink implements AlertSink {
  readonly name = 'webhook';

  constructor(private readonly config: WebhookConfig) {}

  deliver(alert: Alert, signal: AbortSignal): Promise<void> {
    return post(this.name, this.config.url, this.config.headers, this.config.timeoutMs, alert, signal);
  }
}

const alertnames: Record<Alert['kind'], string> = { down: 'HandcheckTargetDown', reboot: 'HandcheckTargetRebooted', 'reboot-loop': 'HandcheckTargetRebootLoop' };

function summaryOf(alert: Alert): string {
  if (alert.kind === 'reboot') return alert.reboots !== undefined && alert.reboots > 1 ? `${alert.target} rebooted ${alert.reboots} times` : `${alert.target} rebooted`;
  if (alert.kind === 'reboot-loop') return alert.status === 'firing' ? `${alert.target} is in a reboot loop` : `${alert.target} is out of its reboot loop (${alert.to})`;
  if (alert.healthy) return `${alert.target} is up again`;
  // A down episode that a reboot loop took over: the loop's alert speaks for the target now.
  return alert.to === 'reboot-loop' ? `${alert.target} is in a reboot loop (its own alert)` : `${alert.target} is ${alert.to}`;
}

/**
 * Alertmanager's v2 API (`POST /api/v2/alerts`), as Prometheus uses it: labels identify the alert
 * (`alertname`, `target`, the target's labels, the configured ones), annotations describe it. A firing
 * alert's `endsAt` is four resend periods ahead and it is posted again every period, so Alertmanager
 * keeps it active while the monitor lives and resolves it by itself if the monitor dies; a resolved
 * alert carries the time of the recovery as `endsAt`.
 */
export class AlertmanagerSink implements AlertSink {
  readonly name = 'alertmanager';
  readonly resendMs: number;

  constructor(
    private readonly config: AlertmanagerConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.resendMs = config.resendMs;
  }

  /** The alert as Alertmanager's `postableAlert`. */
  postable(alert: Alert): Record<string, unknown> {
    const annotations: Record<string, string> = {
      summary: summaryOf(alert),
      description: alert.cause ? `${alert.reason}; ${alert.cause}` : alert.reason,
      address: `${alert.host.includes(':') ? `[${alert.host}]` : alert.host}:${alert.port}`,
      state: alert.to,
      alert_id: alert.id,
    };
    if (alert.cause) annotations.cause = alert.cause;
    return {
      labels: { ...alert.labels, ...this.config.labels, alertname: alertnames[alert.kind], target: alert.target },
      annotations,
      startsAt: alert.startsAt,
      endsAt: alert.endsAt ?? new Date(this.now() + 4 * this.resendMs).toISOString(),
      ...(alert.generatorURL ? { generatorURL: alert.generatorURL } : {}),
    };
  }

  deliver(alert: Alert, signal: AbortSignal): Promise<void> {
    return post(this.name, `${this.config.url}/api/v2/alerts`, this.config.headers, this.config.timeoutMs, [this.postable(alert)], signal);
  }
}
