/**
 * Alerts on transitions: a command, a webhook, or both. `notify` only enqueues and returns; each sink
 * drains its own bounded queue in order, one delivery at a time, retrying a failed delivery with a
 * doubling backoff. A sink that is down delays only its own queue, never the probes: when the queue
 * is full the oldest alert is dropped and counted.
 */
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import { AlertDeliveryError, MonitorClosedError } from './errors.js';
import type { TargetState } from './state.js';

export interface AlertEvent {
  target: string;
  host: string;
  port: number;
  labels: Readonly<Record<string, string>>;
  from: TargetState;
  to: TargetState;
  /** True when the target went up, false when it went (or stayed) down. */
  healthy: boolean;
  reason: string;
  /** ISO 8601. */
  at: string;
}

export type AlertOutcome = 'delivered' | 'retried' | 'failed' | 'dropped';

export interface AlertSink {
  readonly name: string;
  /** One attempt; rejects with AlertDeliveryError when it failed. */
  deliver(event: AlertEvent, signal: AbortSignal): Promise<void>;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs `/bin/sh -c COMMAND` with the event as JSON on stdin and as HANDCHECK_* variables. */
export class CommandSink implements AlertSink {
  readonly name = 'command';

  constructor(
    private readonly command: string,
    private readonly timeoutMs = 10_000,
  ) {}

  deliver(event: AlertEvent, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', this.command], {
        stdio: ['pipe', 'ignore', 'pipe'],
        signal,
        timeout: this.timeoutMs,
        env: {
          ...process.env,
          HANDCHECK_TARGET: event.target,
          HANDCHECK_ADDRESS: `${event.host}:${event.port}`,
          HANDCHECK_FROM: event.from,
          HANDCHECK_TO: event.to,
          HANDCHECK_HEALTHY: event.healthy ? '1' : '0',
          HANDCHECK_REASON: event.reason,
          HANDCHECK_AT: event.at,
        },
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        if (stderr.length < 2000) stderr += chunk.toString();
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(`${JSON.stringify(event)}\n`);
      child.once('error', (err) => reject(signal.aborted ? signal.reason : new AlertDeliveryError(this.name, `cannot run "${this.command}": ${err.message}`, { cause: err })));
      child.once('close', (code, killed) => {
        if (code === 0) resolve();
        else if (signal.aborted) reject(signal.reason);
        else reject(new AlertDeliveryError(this.name, `"${this.command}" ${killed ? `was killed by ${killed}` : `exited with ${code}`}${stderr ? `: ${stderr.trim()}` : ''}`));
      });
    });
  }
}

/** POSTs the event as JSON; any 2xx answer is a delivery. */
export class WebhookSink implements AlertSink {
  readonly name = 'webhook';

  constructor(
    private readonly url: string,
    private readonly timeoutMs = 5000,
  ) {}

  async deliver(event: AlertEvent, signal: AbortSignal): Promise<void> {
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'handcheck-monitor' },
        body: JSON.stringify(event),
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]),
      });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const cause = (err as Error & { cause?: { code?: string } }).cause;
      throw new AlertDeliveryError(this.name, `POST ${this.url} failed: ${cause?.code ?? (err as Error).message}`, { cause: err });
    }
    await response.body?.cancel();
    if (!response.ok) throw new AlertDeliveryError(this.name, `POST ${this.url} answered ${response.status}`);
  }
}

export interface AlerterOptions {
  sinks: AlertSink[];
  logger: Logger;
  retries?: number;
  backoffMs?: number;
  queueLimit?: number;
  onOutcome?: (sink: string, outcome: AlertOutcome) => void;
}

class SinkQueue {
  private readonly queue: AlertEvent[] = [];
  private draining: Promise<void> | undefined;

  constructor(
    readonly sink: AlertSink,
    private readonly options: Required<Omit<AlerterOptions, 'sinks' | 'onOutcome'>> & Pick<AlerterOptions, 'onOutcome'>,
    private readonly signal: AbortSignal,
  ) {}

  get length(): number {
    return this.queue.length;
  }

  push(event: AlertEvent): void {
    this.queue.push(event);
    if (this.queue.length > this.options.queueLimit) {
      const dropped = this.queue.shift()!;
      this.options.logger.warn({ sink: this.sink.name, target: dropped.target, to: dropped.to }, 'alert queue full; dropped the oldest alert');
      this.options.onOutcome?.(this.sink.name, 'dropped');
    }
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.signal.aborted) {
      const event = this.queue.shift()!;
      await this.deliver(event);
    }
  }

  private async deliver(event: AlertEvent): Promise<void> {
    const { retries, backoffMs, logger } = this.options;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.sink.deliver(event, this.signal);
        this.options.onOutcome?.(this.sink.name, 'delivered');
        return;
      } catch (err) {
        if (this.signal.aborted) return;
        const last = attempt >= retries;
        logger.warn({ sink: this.sink.name, target: event.target, to: event.to, attempt: attempt + 1, err: (err as Error).message }, last ? 'alert delivery failed; giving up' : 'alert delivery failed; retrying');
        this.options.onOutcome?.(this.sink.name, last ? 'failed' : 'retried');
        if (last) return;
        try {
          await sleep(backoffMs * 2 ** attempt, this.signal);
        } catch {
          return;
        }
      }
    }
  }

  idle(): Promise<void> {
    return this.draining ?? Promise.resolve();
  }
}

export class Alerter {
  private readonly queues: SinkQueue[];
  private readonly abort = new AbortController();

  constructor(options: AlerterOptions) {
    const settings = { logger: options.logger, retries: options.retries ?? 3, backoffMs: options.backoffMs ?? 1000, queueLimit: options.queueLimit ?? 1000, onOutcome: options.onOutcome };
    this.queues = options.sinks.map((sink) => new SinkQueue(sink, settings, this.abort.signal));
  }

  /** Enqueues the event for every sink and returns at once. */
  notify(event: AlertEvent): void {
    if (this.abort.signal.aborted) return;
    for (const queue of this.queues) queue.push(event);
  }

  /** Alerts waiting per sink, the one being delivered not counted. */
  pending(): Record<string, number> {
    return Object.fromEntries(this.queues.map((q) => [q.sink.name, q.length]));
  }

  /** Resolves once every queue is empty (for tests and orderly shutdown with a deadline). */
  async idle(): Promise<void> {
    await Promise.all(this.queues.map((q) => q.idle()));
  }

  /** Abandons deliveries in flight and alerts still queued. Idempotent. */
  async close(): Promise<void> {
    if (!this.abort.signal.aborted) this.abort.abort(new MonitorClosedError('alert delivery'));
    await this.idle();
  }
}
