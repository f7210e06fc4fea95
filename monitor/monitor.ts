/**
 * The monitor: one loop per target, in probe or hold mode, each result classified from what TCP
 * showed, fed through the target's rise/fall thresholds; transitions go to the history, the metrics,
 * the alert queues and any listener (terminal, dashboard). Nothing a listener or a sink does can hold
 * up a probe: history writes are synchronous and short, alerts are queued.
 *
 * probe: connect every `intervalMs` (phases spread at random over the first interval so a thousand
 * targets do not connect in one burst), wait `graceMs`, close with FIN.
 * hold: keep one connection; a reset or close of it is `lost` the moment it arrives (the firmware's
 * `recheckMs` pushes faults this way), TCP keepalive notices a dead peer or a cut cable; reconnect
 * with a doubling backoff with jitter, capped at `intervalMs`.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { type Alert, type AlertStatus, Alerter, type AlertSink, alertId } from './alerts.js';
import { bootRecord, componentReports, describeReports } from './appliance-client.js';
import type { ModbusQueryConfig, MonitorConfig, TargetConfig, TargetSettings } from './config.js';
import { MonitorClosedError } from './errors.js';
import { History } from './history.js';
import { MonitorMetrics } from './metrics.js';
import { Outbox } from './outbox.js';
import { type HeldConnection, connectAndClassify, localErrors } from './probe.js';
import { AlertmanagerSink, CommandSink, WebhookSink } from './sinks.js';
import { type Observation, type TargetState, TargetTracker, type TrackerSnapshot, type Transition } from './state.js';

export interface MonitorOptions {
  config: MonitorConfig;
  logger: Logger;
  /** How long close() lets queued alerts go out before abandoning them. Default 2000 ms. */
  alertGraceMs?: number;
  /** First reconnect delay in hold mode, before jitter and doubling. Default 100 ms. */
  holdBackoffMs?: number;
  random?: () => number;
}

export interface TargetSnapshot extends TrackerSnapshot {
  name: string;
  host: string;
  port: number;
  mode: TargetConfig['mode'];
  labels: Readonly<Record<string, string>>;
  /** hold mode: whether a connection is held right now. */
  held: boolean;
  /** The appliance's boot count when last read (targets with `modbus`). */
  bootCount?: number;
}

interface Runner {
  config: TargetConfig;
  tracker: TargetTracker;
  held: Socket | undefined;
  /** When the target's current episode of being down began; undefined while it is up or unknown. */
  downSince: number | undefined;
  /** Stops this target's loop alone (the target left the set) or with every other (close). */
  abort: AbortController;
  /** The appliance's boot count when last read (targets with `modbus`). */
  bootCount: number | undefined;
}

/** How long a reboot's alert stays active in Alertmanager. */
const rebootAlertMs = 3_600_000;

const isDown = (state: TargetState): boolean => state !== 'up' && state !== 'unknown';

const round = (ms: number): string => (ms < 10 ? ms.toFixed(2) : ms.toFixed(0));

export function describeOutcome(outcome: HeldConnection, target: Pick<TargetConfig, 'graceMs' | 'connectTimeoutMs'>): string {
  const reason = describeResult(outcome, target);
  return outcome.finAfterMs === undefined ? reason : `FIN ${round(outcome.finAfterMs)} ms after the handshake, then ${reason} on a second connect (the firmware stopped, not a diagnosis)`;
}

function describeResult(outcome: HeldConnection, target: Pick<TargetConfig, 'graceMs' | 'connectTimeoutMs'>): string {
  switch (outcome.result) {
    case 'up':
      return `handshake in ${round(outcome.connectMs)} ms; no RST or FIN within ${target.graceMs} ms`;
    case 'refused':
      return outcome.errno === 'ECONNREFUSED' ? 'RST to the SYN' : `connect failed: ${outcome.errno ?? 'unknown error'}`;
    case 'reset':
      return outcome.cutAfterMs === undefined ? 'RST as the handshake completed' : `RST ${round(outcome.cutAfterMs)} ms after the handshake`;
    case 'closed':
      return `FIN ${round(outcome.cutAfterMs ?? 0)} ms after the handshake`;
    case 'timeout':
      return `no SYN/ACK within ${target.connectTimeoutMs} ms`;
    case 'unreachable':
      return `${outcome.errno ?? 'EHOSTUNREACH'}: no route to the host or network`;
    case 'error':
      return `${outcome.errno ?? 'error'}: ${localErrors[outcome.errno ?? ''] ?? 'the connect failed on the monitor host'}`;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export class Monitor {
  readonly history: History;
  readonly metrics: MonitorMetrics;
  readonly alerter: Alerter;
  /** Wall-clock time the monitor started, ms since the epoch. */
  readonly startedAt = Date.now();
  private readonly runners = new Map<string, Runner>();
  private readonly loops = new Set<Promise<void>>();
  private readonly resultListeners = new Set<(target: TargetConfig, observation: Observation) => void>();
  private readonly transitionListeners = new Set<(transition: Transition, target: TargetConfig) => void>();
  private readonly log: Logger;
  private readonly random: () => number;
  private closing: Promise<void> | undefined;
  /** Aborted at close: what is not one target's loop (asking an appliance why). */
  private readonly abort = new AbortController();
  private current: MonitorConfig;

  private constructor(private readonly options: MonitorOptions) {
    const { config } = options;
    this.log = options.logger.child({ subsystem: 'monitor' });
    this.random = options.random ?? Math.random;
    this.history = History.open(config.db ?? ':memory:', { retentionDays: config.retentionDays });
    this.current = config;
    const restored = this.history.lastStates();
    for (const target of config.targets) this.runners.set(target.name, this.runnerFor(target, restored));
    this.metrics = new MonitorMetrics(config.targets, (name) => this.runners.get(name)?.tracker.snapshot(), { connectHistogram: config.connectHistogram });
    const { alerts } = config;
    const sinks: AlertSink[] = [];
    if (alerts.command) sinks.push(new CommandSink(alerts.command));
    if (alerts.webhook) sinks.push(new WebhookSink(alerts.webhook));
    if (alerts.alertmanager) sinks.push(new AlertmanagerSink(alerts.alertmanager));
    this.alerter = new Alerter({
      sinks,
      outbox: new Outbox(this.history.database),
      logger: options.logger.child({ subsystem: 'alerts' }),
      retries: alerts.retries,
      backoffMs: alerts.backoffMs,
      maxBackoffMs: alerts.maxBackoffMs,
      concurrency: alerts.concurrency,
      queueLimit: alerts.queueLimit,
      onOutcome: (sink, outcome) => this.metrics.alert(sink, outcome),
    });
    // A target down when the monitor stopped is still down: a sink added since hears of it now.
    for (const runner of this.runners.values()) {
      const last = restored.get(runner.config.name);
      if (last && runner.downSince !== undefined) this.alerter.ensure(this.alertOf(runner, last, 'firing'));
    }
  }

  /** Opens the history, restores each target's last recorded state, and starts every target's loop. */
  static start(options: MonitorOptions): Monitor {
    const monitor = new Monitor(options);
    for (const runner of monitor.runners.values()) monitor.run(runner);
    return monitor;
  }

  private runnerFor(target: TargetConfig, restored: ReadonlyMap<string, Transition>): Runner {
    const tracker = new TargetTracker(target.name, target);
    const last = restored.get(target.name);
    if (last) tracker.restore(last.to, last.at, last.reason);
    const downSince = last && isDown(last.to) ? (this.history.episodeStart(target.name) ?? last.at) : undefined;
    return { config: target, tracker, held: undefined, downSince, bootCount: undefined, abort: new AbortController() };
  }

  private run(runner: Runner): void {
    const loop = (runner.config.mode === 'hold' ? this.holdLoop(runner) : this.probeLoop(runner)).catch((err: unknown) =>
      this.log.error({ err, target: runner.config.name }, 'target loop failed'),
    );
    this.loops.add(loop);
    void loop.then(() => this.loops.delete(loop));
  }

  /**
   * Watches a new set of targets (a reloaded config, service discovery): a target that left is
   * stopped (a held connection closed with FIN), a new one starts from its last recorded state, one
   * whose settings, address or labels changed restarts with the state it had. Unchanged targets go on
   * untouched. Returns what changed, by name.
   */
  setTargets(targets: readonly TargetConfig[]): { added: string[]; removed: string[]; changed: string[] } {
    if (this.closing) return { added: [], removed: [], changed: [] };
    const next = new Map(targets.map((t) => [t.name, t]));
    const added: string[] = [];
    const removed: string[] = [];
    const changed: string[] = [];
    for (const [name, runner] of this.runners) {
      const target = next.get(name);
      if (target && JSON.stringify(target) === JSON.stringify(runner.config)) continue;
      runner.abort.abort(new MonitorClosedError('probe'));
      this.runners.delete(name);
      (target ? changed : removed).push(name);
    }
    const restored = this.history.lastStates();
    for (const target of targets) {
      if (this.runners.has(target.name)) continue;
      if (!changed.includes(target.name)) added.push(target.name);
      const runner = this.runnerFor(target, restored);
      this.runners.set(target.name, runner);
    }
    this.current = Object.freeze({ ...this.current, targets: Object.freeze([...targets]) });
    this.metrics.setTargets(targets);
    for (const name of [...added, ...changed]) this.run(this.runners.get(name)!);
    if (added.length + removed.length + changed.length > 0) this.log.info({ added, removed, changed, targets: targets.length }, 'targets changed');
    return { added, removed, changed };
  }

  get targets(): readonly TargetConfig[] {
    return this.current.targets;
  }

  /** The settings of a target that sets none, for probes the monitor does not schedule (`/probe`). */
  get defaults(): Readonly<TargetSettings> {
    return this.current.defaults;
  }

  snapshot(): TargetSnapshot[] {
    return [...this.runners.values()].map((r) => this.snapshotOf(r));
  }

  target(name: string): TargetSnapshot | undefined {
    const runner = this.runners.get(name);
    return runner && this.snapshotOf(runner);
  }

  private snapshotOf(runner: Runner): TargetSnapshot {
    const { name, host, port, mode, labels } = runner.config;
    return { name, host, port, mode, labels, held: runner.held !== undefined, bootCount: runner.bootCount, ...runner.tracker.snapshot() };
  }

  onResult(listener: (target: TargetConfig, observation: Observation) => void): () => void {
    this.resultListeners.add(listener);
    return () => this.resultListeners.delete(listener);
  }

  onTransition(listener: (transition: Transition, target: TargetConfig) => void): () => void {
    this.transitionListeners.add(listener);
    return () => this.transitionListeners.delete(listener);
  }

  /**
   * Feeds one result through the target's thresholds. A transition to a fault of a target with
   * `modbus` set waits for the appliance's answer to why (bounded by its timeoutMs), so the history,
   * the alert and the state carry it; only this target's loop waits.
   */
  private async report(runner: Runner, observation: Observation): Promise<void> {
    const target = runner.config;
    this.metrics.observe(target.name, observation.result, observation.connectMs);
    const transition = runner.tracker.observe(observation);
    for (const listener of this.resultListeners) listener(target, observation);
    if (!transition) return;
    if (target.modbus && isDown(transition.to)) {
      transition.cause = await this.askWhy(target, target.modbus);
      transition.reason = `${transition.reason}; the appliance says: ${transition.cause}`;
      runner.tracker.explain(transition.reason);
    }
    try {
      this.history.record(transition);
    } catch (err) {
      this.log.error({ err, target: target.name }, 'cannot record a transition in the history');
    }
    this.metrics.transition(target.name, transition.from, transition.to);
    this.log.info({ target: target.name, from: transition.from, to: transition.to, reason: transition.reason }, 'transition');
    // A monitor starting on a healthy fleet says nothing; one starting on a target that is down alerts.
    // A change between two kinds of failure updates the episode's alert without raising a new one.
    if (isDown(transition.to)) {
      runner.downSince ??= transition.at;
      this.alerter.notify(this.alertOf(runner, transition, 'firing'));
    } else if (runner.downSince !== undefined) {
      this.alerter.notify(this.alertOf(runner, transition, 'resolved'));
      runner.downSince = undefined;
    }
    for (const listener of this.transitionListeners) listener(transition, target);
  }

  /**
   * Reads the appliance's boot record after an up result; a boot count above the last one read is a
   * reboot: a transition of its own (state unchanged, in the history and to listeners) and an alert.
   * The first read after the monitor starts only sets the baseline. An appliance that does not answer
   * says nothing here (its faults are the probes' business).
   */
  private async checkBoot(runner: Runner, query: ModbusQueryConfig): Promise<void> {
    const target = runner.config;
    const record = await bootRecord({ host: target.host, port: query.port ?? target.port, unitId: query.unitId, timeoutMs: query.timeoutMs, signal: this.abort.signal }).catch(() => undefined);
    if (!record) return;
    const previous = runner.bootCount;
    runner.bootCount = record.count;
    if (previous === undefined || record.count <= previous) return;
    const state = runner.tracker.snapshot().state;
    const at = Date.now();
    const reboots = record.count - previous;
    const transition: Transition = {
      target: target.name,
      at,
      from: state,
      to: state,
      reason: `rebooted${reboots > 1 ? ` ${reboots} times` : ''}: boot ${record.count} (was ${previous}), last reset cause ${record.lastResetCause}, up ${record.uptimeS} s, ${record.uncleanResets} unclean resets in the appliance's reset-loop window`,
      connectMs: undefined,
    };
    try {
      this.history.record(transition);
    } catch (err) {
      this.log.error({ err, target: target.name }, 'cannot record a reboot in the history');
    }
    this.log.info({ target: target.name, boot: record.count, previous, cause: record.lastResetCause }, 'reboot');
    const bootedAt = at - record.uptimeS * 1000;
    this.alerter.notify({
      ...this.alertOf(runner, transition, 'firing'),
      id: alertId(`${target.name}\nboot`, record.count),
      kind: 'reboot',
      startsAt: new Date(bootedAt).toISOString(),
      endsAt: new Date(at + rebootAlertMs).toISOString(),
    });
    for (const listener of this.transitionListeners) listener(transition, target);
  }

  private async askWhy(target: TargetConfig, query: ModbusQueryConfig): Promise<string> {
    try {
      return describeReports(await componentReports({ host: target.host, port: query.port ?? target.port, unitId: query.unitId, timeoutMs: query.timeoutMs, signal: this.abort.signal }));
    } catch (err) {
      return `could not ask the appliance: ${(err as Error).message}`;
    }
  }

  private alertOf(runner: Runner, transition: Transition, status: AlertStatus): Alert {
    const target = runner.config;
    const startsAt = runner.downSince ?? transition.at;
    const externalUrl = this.options.config.alerts.externalUrl;
    return {
      id: alertId(target.name, startsAt),
      kind: 'down',
      status,
      target: target.name,
      host: target.host,
      port: target.port,
      labels: target.labels,
      from: transition.from,
      to: transition.to,
      healthy: transition.to === 'up',
      reason: transition.reason,
      ...(transition.cause ? { cause: transition.cause } : {}),
      at: new Date(transition.at).toISOString(),
      startsAt: new Date(startsAt).toISOString(),
      ...(status === 'resolved' ? { endsAt: new Date(transition.at).toISOString() } : {}),
      ...(externalUrl ? { generatorURL: `${externalUrl}/#target=${encodeURIComponent(target.name)}` } : {}),
    };
  }

  private async attempt(runner: Runner, keep: boolean): Promise<HeldConnection | undefined> {
    const target = runner.config;
    try {
      return await connectAndClassify({ host: target.host, port: target.port, connectTimeoutMs: target.connectTimeoutMs, graceMs: target.graceMs, keep, signal: runner.abort.signal });
    } catch (err) {
      if (runner.abort.signal.aborted) return undefined;
      throw err;
    }
  }

  private observationOf(outcome: HeldConnection, target: TargetConfig): Observation {
    return { result: outcome.result, at: Date.now(), connectMs: outcome.connectMs, errno: outcome.errno, reason: describeOutcome(outcome, target) };
  }

  private async probeLoop(runner: Runner): Promise<void> {
    const { intervalMs } = runner.config;
    const signal = runner.abort.signal;
    if (!(await sleep(this.random() * intervalMs, signal))) return;
    let next = performance.now();
    while (!signal.aborted) {
      next += intervalMs;
      const outcome = await this.attempt(runner, false);
      if (!outcome) return;
      await this.report(runner, this.observationOf(outcome, runner.config));
      if (outcome.result === 'up' && runner.config.modbus) await this.checkBoot(runner, runner.config.modbus);
      const now = performance.now();
      // Behind schedule (a stalled loop, a long timeout): start again from now rather than burst.
      if (next < now) next = now;
      if (!(await sleep(next - now, signal))) return;
    }
  }

  private async holdLoop(runner: Runner): Promise<void> {
    const { intervalMs } = runner.config;
    const base = this.options.holdBackoffMs ?? 100;
    const signal = runner.abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      const outcome = await this.attempt(runner, true);
      if (!outcome) return;
      await this.report(runner, this.observationOf(outcome, runner.config));
      let delay: number;
      if (outcome.socket) {
        // Watched before the boot record is read, so a loss meanwhile is heard.
        const watching = this.watch(runner, outcome.socket);
        if (runner.config.modbus) await this.checkBoot(runner, runner.config.modbus);
        const lost = await watching;
        if (!lost) return;
        await this.report(runner, lost);
        failures = 0;
        delay = base;
      } else {
        failures += 1;
        delay = Math.min(intervalMs, base * 2 ** failures);
      }
      // Equal jitter: at least half the delay, so a fleet that lost its monitor's connections at once
      // comes back spread out rather than in lockstep.
      if (!(await sleep(delay / 2 + (this.random() * delay) / 2, signal))) return;
    }
  }

  /** Resolves with the loss of a held connection, or undefined when the monitor closes first. */
  private watch(runner: Runner, socket: Socket): Promise<Observation | undefined> {
    const signal = runner.abort.signal;
    const heldAt = performance.now();
    runner.held = socket;
    socket.setKeepAlive(true, runner.config.keepAliveMs);
    return new Promise((resolve) => {
      const done = (observation: Observation | undefined): void => {
        signal.removeEventListener('abort', onAbort);
        socket.removeAllListeners();
        socket.on('error', () => undefined);
        socket.destroy();
        runner.held = undefined;
        resolve(observation);
      };
      const lost = (reason: string, errno?: string): void => done({ result: 'lost', at: Date.now(), connectMs: undefined, errno, reason: `${reason} after ${((performance.now() - heldAt) / 1000).toFixed(1)} s held` });
      const onAbort = (): void => {
        socket.end();
        done(undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      socket.on('data', () => undefined);
      socket.once('end', () => lost('FIN on the held connection'));
      socket.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ETIMEDOUT') lost('keepalive gave up (no answer to 10 probes)', err.code);
        else if (err.code === 'ECONNRESET') lost('RST on the held connection', err.code);
        else lost(`held connection failed: ${err.code ?? err.message}`, err.code);
      });
      socket.once('close', () => lost('held connection closed'));
    });
  }

  /** Stops every loop (held connections closed with FIN), lets queued alerts go out for a moment, closes the history. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.abort.abort(new MonitorClosedError('probe'));
      for (const runner of this.runners.values()) runner.abort.abort(new MonitorClosedError('probe'));
      await Promise.all(this.loops);
      await Promise.race([this.alerter.idle(), new Promise((resolve) => setTimeout(resolve, this.options.alertGraceMs ?? 2000).unref())]);
      await this.alerter.close();
      this.history.close();
    })();
    return this.closing;
  }
}
