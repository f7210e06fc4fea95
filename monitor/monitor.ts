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
 *
 * Targets with `modbus` also have their boot record read: a higher boot count is a reboot, and
 * `rebootLoop.count` reboots within `rebootLoop.windowMs` (or the appliance's own finding of a reset
 * loop) put the target in the `reboot-loop` state until the window passes with no further reboot.
 * The last boot seen is kept in the database, so a monitor that starts again reports the reboots it
 * did not watch.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { type Alert, type AlertStatus, Alerter, type AlertSink, alertId } from './alerts.js';
import { type BootRecord, bootRecord, componentReports, describeReports } from './appliance-client.js';
import { Boots, type SeenBoot } from './boots.js';
import type { ModbusQueryConfig, MonitorConfig, TargetConfig, TargetSettings } from './config.js';
import { MonitorClosedError } from './errors.js';
import { History } from './history.js';
import { MonitorMetrics } from './metrics.js';
import { Outbox } from './outbox.js';
import { type HeldConnection, connectAndClassify, localErrors } from './probe.js';
import { AlertmanagerSink, CommandSink, WebhookSink } from './sinks.js';
import { type Observation, TargetTracker, type TrackerSnapshot, type Transition, isFault } from './state.js';

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
  /** When the target's current episode of failing connects began; undefined while it is not in one. */
  downSince: number | undefined;
  /** Stops this target's loop alone (the target left the set) or with every other (close). */
  abort: AbortController;
  /** The boot record as last seen (targets with `modbus`): read by this process, or before it, from the database. */
  boot: SeenBoot | undefined;
  /** Whether this process has read the boot record yet. */
  bootRead: boolean;
  /** The appliance's own finding of a reset loop at the last read, in words. */
  applianceLoop: string | undefined;
  /** When the target entered the `reboot-loop` state (its alert's episode); undefined outside it. */
  loopSince: number | undefined;
  /** When the reboot loop ends if no further reboot comes. */
  loopUntil: number;
  loopTimer: NodeJS.Timeout | undefined;
}

/** How long a reboot's alert stays active in Alertmanager. */
const rebootAlertMs = 3_600_000;
/** A boot record read again without news is written back at most this often (its `seenAt`). */
const seenEveryMs = 60_000;

const span = (ms: number): string => (ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`);

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

/** What a boot record read showed when the boot count rose. */
interface Reboot {
  previous: SeenBoot;
  record: BootRecord;
  at: number;
  /** How many boots the count rose by. */
  count: number;
  /** The previous boot was seen by an earlier monitor process, not this one. */
  unwatched: boolean;
}

export class Monitor {
  readonly history: History;
  private readonly boots: Boots;
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
    this.boots = new Boots(this.history.database);
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
    // A target down (or in a reboot loop) when the monitor stopped still is: a sink added since hears of it now.
    for (const runner of this.runners.values()) {
      const last = restored.get(runner.config.name);
      if (last && runner.downSince !== undefined) this.alerter.ensure(this.alertOf(runner, last, 'firing'));
      if (last && runner.loopSince !== undefined) this.alerter.ensure(this.alertOf(runner, last, 'firing', 'reboot-loop'));
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
    // A loop's last row may be a reboot within it: its start and its reason are those of its entry.
    const loop = last?.to === 'reboot-loop' ? (this.history.entered(target.name, 'reboot-loop') ?? last) : undefined;
    const loopSince = loop?.at;
    if (last) tracker.restore(last.to, loopSince ?? last.at, (loop ?? last).reason);
    const downSince = last && isFault(last.to) ? (this.history.episodeStart(target.name) ?? last.at) : undefined;
    let boot: SeenBoot | undefined;
    try {
      boot = this.boots.get(target.name);
    } catch (err) {
      this.log.error({ err, target: target.name }, 'cannot read the last boot seen from the database');
    }
    // A loop under way when the monitor stopped goes on until its window passes with no further reboot.
    const loopUntil = loopSince === undefined ? 0 : Math.max(loopSince, ...(boot?.reboots ?? [])) + target.rebootLoop.windowMs;
    const runner: Runner = { config: target, tracker, held: undefined, downSince, boot, bootRead: false, applianceLoop: undefined, loopSince, loopUntil, loopTimer: undefined, abort: new AbortController() };
    runner.abort.signal.addEventListener('abort', () => clearTimeout(runner.loopTimer), { once: true });
    return runner;
  }

  private run(runner: Runner): void {
    if (runner.loopSince !== undefined) this.armLoop(runner);
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
    return { name, host, port, mode, labels, held: runner.held !== undefined, bootCount: runner.boot?.count, ...runner.tracker.snapshot() };
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
   * `modbus` set waits for the appliance's answer to why and for its boot record (both bounded by its
   * timeoutMs), so the history, the alert and the state carry them; only this target's loop waits. A
   * reboot loop the boot record shows takes the transition's place: the target goes to `reboot-loop`.
   * Returns whether the boot record was read.
   */
  private async report(runner: Runner, observation: Observation): Promise<boolean> {
    const target = runner.config;
    this.metrics.observe(target.name, observation.result, observation.connectMs);
    let transition = runner.tracker.observe(observation);
    for (const listener of this.resultListeners) listener(target, observation);
    if (!transition) return false;
    if (!target.modbus || !isFault(transition.to)) {
      this.commit(runner, transition);
      return false;
    }
    const [cause, record] = await Promise.all([this.askWhy(target, target.modbus), this.readBoot(runner, target.modbus)]);
    transition.cause = cause;
    transition.reason = `${transition.reason}; the appliance says: ${cause}`;
    runner.tracker.explain(transition.reason);
    const at = Date.now();
    const reboot = record && this.noteBoot(runner, record, at);
    const loop = record && this.reviewLoop(runner, at);
    if (loop) transition = { ...transition, to: loop.to, reason: `${loop.reason}; ${transition.reason}` };
    this.commit(runner, transition);
    if (reboot) this.reportReboot(runner, reboot);
    return record !== undefined;
  }

  /** Records a change of state, counts it, alerts on it and tells the listeners. */
  private commit(runner: Runner, transition: Transition): void {
    const target = runner.config;
    try {
      this.history.record(transition);
    } catch (err) {
      this.log.error({ err, target: target.name }, 'cannot record a transition in the history');
    }
    this.metrics.transition(target.name, transition.from, transition.to);
    this.log.info({ target: target.name, from: transition.from, to: transition.to, reason: transition.reason }, 'transition');
    // A monitor starting on a healthy fleet says nothing; one starting on a target that is down alerts.
    // A change between two kinds of failure updates the episode's alert without raising a new one. A
    // reboot loop ends the episode: its own alert speaks for the target until the loop ends.
    if (isFault(transition.to)) {
      runner.downSince ??= transition.at;
      this.alerter.notify(this.alertOf(runner, transition, 'firing'));
    } else if (runner.downSince !== undefined) {
      this.alerter.notify(this.alertOf(runner, transition, 'resolved'));
      runner.downSince = undefined;
    }
    if (transition.to === 'reboot-loop') {
      runner.loopSince ??= transition.at;
      this.alerter.notify(this.alertOf(runner, transition, 'firing', 'reboot-loop'));
    } else if (transition.from === 'reboot-loop') {
      this.alerter.notify(this.alertOf(runner, transition, 'resolved', 'reboot-loop'));
      runner.loopSince = undefined;
    }
    for (const listener of this.transitionListeners) listener(transition, target);
  }

  /** The boot record, or undefined when the appliance does not answer (its faults are the probes' business). */
  private readBoot(runner: Runner, query: ModbusQueryConfig): Promise<BootRecord | undefined> {
    const target = runner.config;
    return bootRecord({ host: target.host, port: query.port ?? target.port, unitId: query.unitId, timeoutMs: query.timeoutMs, signal: this.abort.signal }).catch(() => undefined);
  }

  /**
   * Reads the boot record (after an up result, and after every result while a reboot loop holds): a
   * boot count above the last one seen is a reboot, and enough of them make a reboot loop.
   */
  private async checkBoot(runner: Runner, query: ModbusQueryConfig): Promise<void> {
    const record = await this.readBoot(runner, query);
    if (!record || runner.abort.signal.aborted) return;
    const at = Date.now();
    const reboot = this.noteBoot(runner, record, at);
    if (reboot) this.reportReboot(runner, reboot);
    const loop = this.reviewLoop(runner, at);
    if (loop) this.commit(runner, loop);
  }

  /**
   * Takes in a boot record read at `at`: the boot seen (kept in the database), the reboots counted
   * toward a loop, the appliance's own finding. Returns the reboot it shows, if any. The first read
   * with nothing seen before (no `--db`, or a new target) only sets the baseline.
   */
  private noteBoot(runner: Runner, record: BootRecord, at: number): Reboot | undefined {
    const target = runner.config;
    const previous = runner.boot;
    const unwatched = !runner.bootRead && previous !== undefined && previous.seenAt < this.startedAt;
    runner.bootRead = true;
    runner.applianceLoop =
      record.loopLimit !== undefined && record.uncleanResets >= record.loopLimit
        ? `the appliance counts ${record.uncleanResets} unclean resets in its reset-loop window (its limit ${record.loopLimit})`
        : undefined;
    const bootedAt = at - record.uptimeS * 1000;
    const count = previous !== undefined && record.count > previous.count ? record.count - previous.count : 0;
    let reboots = previous?.reboots ?? [];
    if (count > 0) {
      // Only the newest reboot's time is known (its boot began at bootedAt); the others came after the
      // boot seen last was last seen, and are counted at that time, the earliest they can have been.
      reboots = [...reboots, ...new Array<number>(count - 1).fill(previous!.seenAt), bootedAt];
    }
    reboots = reboots.filter((t) => t > at - target.rebootLoop.windowMs).sort((a, b) => a - b);
    runner.boot = { count: record.count, bootedAt, seenAt: at, reboots };
    if (previous === undefined || previous.count !== record.count || at - previous.seenAt >= seenEveryMs) {
      try {
        this.boots.put(target.name, runner.boot);
      } catch (err) {
        this.log.error({ err, target: target.name }, 'cannot keep the boot seen in the database');
      }
    }
    if (previous !== undefined && record.count < previous.count) {
      this.log.warn({ target: target.name, boot: record.count, previous: previous.count }, 'the boot count went down (a new boot record or another appliance at the address): counting from it');
    }
    return count > 0 ? { previous: previous!, record, at, count, unwatched } : undefined;
  }

  /** A reboot: a transition of its own (state unchanged) in the history and to listeners, and an alert. */
  private reportReboot(runner: Runner, reboot: Reboot): void {
    const target = runner.config;
    const { previous, record, at, count, unwatched } = reboot;
    const state = runner.tracker.state;
    const times = count > 1 ? ` ${count} times` : '';
    const seen = unwatched ? ` while no monitor was watching: boot ${record.count} (last seen boot ${previous.count} at ${new Date(previous.seenAt).toISOString()})` : `: boot ${record.count} (was ${previous.count})`;
    const transition: Transition = {
      target: target.name,
      at,
      from: state,
      to: state,
      reason: `rebooted${times}${seen}, last reset cause ${record.lastResetCause}, up ${record.uptimeS} s, ${record.uncleanResets} unclean resets in the appliance's reset-loop window`,
      connectMs: undefined,
    };
    try {
      this.history.record(transition);
    } catch (err) {
      this.log.error({ err, target: target.name }, 'cannot record a reboot in the history');
    }
    this.log.info({ target: target.name, boot: record.count, previous: previous.count, reboots: count, unwatched, cause: record.lastResetCause }, 'reboot');
    this.alerter.notify({
      ...this.alertOf(runner, transition, 'firing'),
      id: alertId(`${target.name}\nboot`, record.count),
      kind: 'reboot',
      reboots: count,
      startsAt: new Date(runner.boot!.bootedAt).toISOString(),
      endsAt: new Date(at + rebootAlertMs).toISOString(),
    });
    for (const listener of this.transitionListeners) listener(transition, target);
  }

  /**
   * Whether a reboot loop holds at `at`: `rebootLoop.count` reboots within the window, or the
   * appliance's own finding; once in one, the target stays until the window passes with no further
   * reboot and the appliance no longer finds one. Returns the transition into or out of the loop.
   */
  private reviewLoop(runner: Runner, at: number): Transition | undefined {
    const { count, windowMs } = runner.config.rebootLoop;
    const reboots = (runner.boot?.reboots ?? []).filter((t) => t > at - windowMs);
    const byCount = runner.config.modbus !== undefined && reboots.length >= count;
    if (byCount || runner.applianceLoop !== undefined) {
      const last = Math.max(runner.boot?.bootedAt ?? at, ...reboots);
      runner.loopUntil = Math.max(runner.loopUntil, last + windowMs);
      const why = [
        ...(byCount ? [`${reboots.length} reboots within ${span(windowMs)} (a loop is ${count})`] : []),
        ...(runner.applianceLoop !== undefined ? [runner.applianceLoop] : []),
      ];
      this.armLoop(runner);
      return runner.tracker.enterLoop(at, `reboot loop: ${why.join('; ')}`);
    }
    if (runner.tracker.state !== 'reboot-loop' || at < runner.loopUntil) return undefined;
    clearTimeout(runner.loopTimer);
    return runner.tracker.leaveLoop(at, `no reboot for ${span(windowMs)}`);
  }

  /** Reviews the loop when its window ends (a held connection may bring no result for hours). */
  private armLoop(runner: Runner): void {
    clearTimeout(runner.loopTimer);
    const wait = runner.loopUntil - Date.now();
    // Past the window with the appliance still finding a loop: the next read decides.
    if (wait < 0 && runner.applianceLoop !== undefined) return;
    runner.loopTimer = setTimeout(
      () => {
        if (runner.abort.signal.aborted) return;
        const loop = this.reviewLoop(runner, Date.now());
        if (loop) this.commit(runner, loop);
      },
      Math.max(0, wait),
    );
  }

  private async askWhy(target: TargetConfig, query: ModbusQueryConfig): Promise<string> {
    try {
      return describeReports(await componentReports({ host: target.host, port: query.port ?? target.port, unitId: query.unitId, timeoutMs: query.timeoutMs, signal: this.abort.signal }));
    } catch (err) {
      return `could not ask the appliance: ${(err as Error).message}`;
    }
  }

  private alertOf(runner: Runner, transition: Transition, status: AlertStatus, kind: 'down' | 'reboot-loop' = 'down'): Alert {
    const target = runner.config;
    const startsAt = (kind === 'down' ? runner.downSince : runner.loopSince) ?? transition.at;
    const externalUrl = this.options.config.alerts.externalUrl;
    return {
      // A down episode's id is the target's and its start's alone, as before reboot loops had alerts.
      id: alertId(kind === 'down' ? target.name : `${target.name}\nreboot-loop`, startsAt),
      kind,
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
      const read = await this.report(runner, this.observationOf(outcome, runner.config));
      if (!read && runner.config.modbus && (outcome.result === 'up' || runner.tracker.state === 'reboot-loop')) await this.checkBoot(runner, runner.config.modbus);
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
      const read = await this.report(runner, this.observationOf(outcome, runner.config));
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
        // In a reboot loop, whether the reboots go on is read at every attempt.
        if (!read && runner.config.modbus && runner.tracker.state === 'reboot-loop') await this.checkBoot(runner, runner.config.modbus);
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
