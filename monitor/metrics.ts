/**
 * The monitor's Prometheus metrics. Every per-target series carries `target` and the target's own
 * labels (the union of label names across targets; a target without one of them has it empty), so
 * alert rules and dashboards can aggregate by site, rack or any label the fleet file gives. States
 * and ages are read from the trackers when scraped; only results and transitions are counted as they
 * happen, through children bound once per target.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AlertOutcome } from './alerts.js';
import type { TargetConfig } from './config.js';
import { type Classification, type TargetState, type TrackerSnapshot, classifications, targetStates } from './state.js';

interface Bound {
  connect: ReturnType<Histogram['labels']>;
  results: Map<Classification, ReturnType<Counter['labels']>>;
  labels: Record<string, string>;
}

export class MonitorMetrics {
  readonly registry = new Registry();
  private readonly bound = new Map<string, Bound>();
  private readonly transitions: Counter;
  private readonly alerts: Counter;

  constructor(targets: readonly TargetConfig[], snapshot: (name: string) => TrackerSnapshot | undefined, now: () => number = Date.now) {
    collectDefaultMetrics({ register: this.registry, prefix: 'handcheck_monitor_process_' });
    const labelKeys = [...new Set(targets.flatMap((t) => Object.keys(t.labels)))].sort();
    const labelsOf = (t: TargetConfig): Record<string, string> => Object.fromEntries([['target', t.name], ...labelKeys.map((k) => [k, t.labels[k] ?? ''])]);
    const names = ['target', ...labelKeys];
    const registers = [this.registry];

    new Gauge({
      name: 'handcheck_monitor_target_info',
      help: 'one series per target, value 1: its address and mode',
      labelNames: [...names, 'host', 'port', 'mode'],
      registers,
      collect() {
        for (const t of targets) this.set({ ...labelsOf(t), host: t.host, port: String(t.port), mode: t.mode }, 1);
      },
    });
    new Gauge({
      name: 'handcheck_monitor_target_up',
      help: '1 when the target is up, 0 when it is down, absent while unknown',
      labelNames: names,
      registers,
      collect() {
        this.reset();
        for (const t of targets) {
          const state = snapshot(t.name)?.state;
          if (state && state !== 'unknown') this.set(labelsOf(t), state === 'up' ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'handcheck_monitor_target_state',
      help: 'the classification the target is in: 1 for the current state, 0 for the others',
      labelNames: [...names, 'state'],
      registers,
      collect() {
        for (const t of targets) {
          const current = snapshot(t.name)?.state ?? 'unknown';
          const labels = labelsOf(t);
          for (const state of targetStates) this.set({ ...labels, state }, state === current ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'handcheck_monitor_seconds_since_change',
      help: 'seconds since the target last changed state (or since the state restored at start)',
      labelNames: names,
      registers,
      collect() {
        this.reset();
        const at = now();
        for (const t of targets) {
          const since = snapshot(t.name)?.since;
          if (since !== undefined) this.set(labelsOf(t), Math.max(0, (at - since) / 1000));
        }
      },
    });
    this.transitions = new Counter({
      name: 'handcheck_monitor_transitions_total',
      help: 'state changes of the target, by from and to state',
      labelNames: [...names, 'from', 'to'],
      registers,
    });
    const results = new Counter({
      name: 'handcheck_monitor_results_total',
      help: 'classified connect results (and losses of held connections)',
      labelNames: [...names, 'result'],
      registers,
    });
    const connect = new Histogram({
      name: 'handcheck_monitor_connect_duration_seconds',
      help: 'time from SYN to SYN/ACK (or to the failure of the connect)',
      labelNames: names,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.alerts = new Counter({
      name: 'handcheck_monitor_alerts_total',
      help: 'alert deliveries by sink and outcome (delivered, retried, failed, dropped)',
      labelNames: ['sink', 'outcome'],
      registers,
    });
    for (const t of targets) {
      const labels = labelsOf(t);
      this.bound.set(t.name, {
        labels,
        connect: connect.labels(labels),
        results: new Map(classifications.map((c) => [c, results.labels({ ...labels, result: c })])),
      });
    }
  }

  observe(target: string, result: Classification, connectMs: number | undefined): void {
    const bound = this.bound.get(target);
    if (!bound) return;
    bound.results.get(result)?.inc();
    if (connectMs !== undefined) bound.connect.observe(connectMs / 1000);
  }

  transition(target: string, from: TargetState, to: TargetState): void {
    const bound = this.bound.get(target);
    if (bound) this.transitions.inc({ ...bound.labels, from, to });
  }

  alert(sink: string, outcome: AlertOutcome): void {
    this.alerts.inc({ sink, outcome });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
