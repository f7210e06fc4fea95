/**
 * The monitor's Prometheus metrics. Every per-target series carries `target` and that target's own
 * labels, so alert rules and dashboards can aggregate by site, rack or any label the fleet file
 * gives. The per-target families are written out by hand rather than through prom-client: the set of
 * targets (and so of label names) changes when the targets are reloaded, a target's label string is
 * escaped once instead of at every scrape, and a healthy target costs few series (6, plus 12 for its
 * connect histogram unless that is switched off). prom-client still serves the process's own
 * `process_*` and `nodejs_*` metrics and the alert counters.
 */
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import type { AlertOutcome } from './alerts.js';
import type { TargetConfig } from './config.js';
import type { Classification, TargetState, TrackerSnapshot } from './state.js';

/** Upper bounds of the connect histogram, seconds: loopback and LAN handshakes up to a slow WAN. */
export const connectBuckets: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5];

export interface MetricsOptions {
  /** Per-target connect duration histogram (12 series a target). Default true. */
  connectHistogram?: boolean;
}

interface Series {
  target: TargetConfig;
  /** `target="x",site="y"`, escaped once. */
  labels: string;
  results: Map<Classification, number>;
  transitions: Map<string, number>;
  /** Cumulative counts per bucket of `connectBuckets`, then the count and the sum. */
  buckets: number[];
  count: number;
  sum: number;
}

const escape = (value: string): string => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

function labelString(target: TargetConfig): string {
  const entries: Array<[string, string]> = [['target', target.name], ...Object.entries(target.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))];
  return entries.map(([k, v]) => `${k}="${escape(v)}"`).join(',');
}

const number = (value: number): string => (Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN');

export class MonitorMetrics {
  /** The process's own metrics and the alert counters; the per-target families are appended at render. */
  readonly registry = new Registry();
  private readonly series = new Map<string, Series>();
  private readonly alerts: Counter;
  private readonly discoveryFailures: Counter;
  private readonly connectHistogram: boolean;

  constructor(
    targets: readonly TargetConfig[],
    private readonly snapshot: (name: string) => TrackerSnapshot | undefined,
    options: MetricsOptions = {},
  ) {
    this.connectHistogram = options.connectHistogram ?? true;
    collectDefaultMetrics({ register: this.registry });
    this.alerts = new Counter({
      name: 'handcheck_monitor_alerts_total',
      help: 'alert deliveries by sink and outcome (delivered, retried, failed, dropped, superseded)',
      labelNames: ['sink', 'outcome'],
      registers: [this.registry],
    });
    this.discoveryFailures = new Counter({
      name: 'handcheck_monitor_discovery_failures_total',
      help: 'service discovery reads or fetches that failed (the source keeps the targets it gave last)',
      labelNames: ['source'],
      registers: [this.registry],
    });
    this.setTargets(targets);
  }

  /**
   * Follows a new set of targets: a target that stays keeps its counters (with its new labels), one
   * that goes takes its series with it, a new one starts from zero.
   */
  setTargets(targets: readonly TargetConfig[]): void {
    const names = new Set(targets.map((t) => t.name));
    for (const name of this.series.keys()) if (!names.has(name)) this.series.delete(name);
    for (const target of targets) {
      const kept = this.series.get(target.name);
      if (kept) {
        kept.target = target;
        kept.labels = labelString(target);
      } else {
        this.series.set(target.name, { target, labels: labelString(target), results: new Map(), transitions: new Map(), buckets: connectBuckets.map(() => 0), count: 0, sum: 0 });
      }
    }
  }

  observe(target: string, result: Classification, connectMs: number | undefined): void {
    const series = this.series.get(target);
    if (!series) return;
    series.results.set(result, (series.results.get(result) ?? 0) + 1);
    if (connectMs === undefined || !this.connectHistogram) return;
    const seconds = connectMs / 1000;
    for (let i = connectBuckets.length - 1; i >= 0 && seconds <= connectBuckets[i]!; i--) series.buckets[i]! += 1;
    series.count += 1;
    series.sum += seconds;
  }

  transition(target: string, from: TargetState, to: TargetState): void {
    const series = this.series.get(target);
    if (!series) return;
    const key = `from="${from}",to="${to}"`;
    series.transitions.set(key, (series.transitions.get(key) ?? 0) + 1);
  }

  discoveryFailure(source: string): void {
    this.discoveryFailures.inc({ source });
  }

  alert(sink: string, outcome: AlertOutcome): void {
    this.alerts.inc({ sink, outcome });
  }

  /** The per-target families in the text exposition format. */
  renderTargets(): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    const all = [...this.series.values()];
    const snapshots = new Map(all.map((s) => [s, this.snapshot(s.target.name)]));

    family('handcheck_monitor_target_info', 'gauge', 'one series per target, value 1: its address and mode');
    for (const s of all) out.push(`handcheck_monitor_target_info{${s.labels},host="${escape(s.target.host)}",port="${s.target.port}",mode="${s.target.mode}"} 1`);

    family('handcheck_monitor_target_up', 'gauge', '1 when the target is up, 0 when it is down, absent while unknown');
    for (const s of all) {
      const state = snapshots.get(s)?.state;
      if (state && state !== 'unknown') out.push(`handcheck_monitor_target_up{${s.labels}} ${state === 'up' ? 1 : 0}`);
    }

    family('handcheck_monitor_target_state', 'gauge', 'value 1, labelled with the state the target is in: a classification, unknown or reboot-loop (only the current one)');
    for (const s of all) out.push(`handcheck_monitor_target_state{${s.labels},state="${snapshots.get(s)?.state ?? 'unknown'}"} 1`);

    family('handcheck_monitor_target_last_change_timestamp_seconds', 'gauge', 'when the target last changed state (or the state restored at start), seconds since the epoch');
    for (const s of all) {
      const since = snapshots.get(s)?.since;
      if (since !== undefined) out.push(`handcheck_monitor_target_last_change_timestamp_seconds{${s.labels}} ${since / 1000}`);
    }

    family('handcheck_monitor_transitions_total', 'counter', 'state changes of the target, by from and to state');
    for (const s of all) for (const [key, n] of s.transitions) out.push(`handcheck_monitor_transitions_total{${s.labels},${key}} ${n}`);

    family('handcheck_monitor_results_total', 'counter', 'classified connect results (and losses of held connections)');
    for (const s of all) for (const [result, n] of s.results) out.push(`handcheck_monitor_results_total{${s.labels},result="${result}"} ${n}`);

    if (this.connectHistogram) {
      const name = 'handcheck_monitor_connect_duration_seconds';
      family(name, 'histogram', 'time from SYN to SYN/ACK (or to the failure of the connect)');
      for (const s of all) {
        if (s.count === 0) continue;
        connectBuckets.forEach((le, i) => out.push(`${name}_bucket{${s.labels},le="${le}"} ${s.buckets[i]}`));
        out.push(`${name}_bucket{${s.labels},le="+Inf"} ${s.count}`, `${name}_sum{${s.labels}} ${number(s.sum)}`, `${name}_count{${s.labels}} ${s.count}`);
      }
    }
    return `${out.join('\n')}\n`;
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: `${this.renderTargets()}${await this.registry.metrics()}` };
  }
}
