/**
 * Prometheus metrics of the running firmware. Counters and states are read from the gates and the
 * device-state manager when scraped (collect callbacks), so the accept path does no metrics work;
 * only diagnosis durations are observed as they happen, once per diagnosis, never per reused verdict.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { type BootStatus, resetCauses } from './boot-record.js';
import type { DeviceStateManager } from './device-state.js';
import type { Gate, GateStats } from './gate/gate.js';

/** What metrics read of a service's gate (a Gate or a Guard). */
export type WatchedGate = Pick<Gate, 'service' | 'stats'>;

const stateValues = { unknown: 0, ok: 1, degraded: 2, failed: 3 } as const;

type GateCounter = Exclude<keyof GateStats, 'service' | 'mode' | 'listening' | 'held' | 'waiting' | 'lastVerdict' | 'queue'>;

const gateCounters: Record<GateCounter, string> = {
  connections: 'connections accepted by the server, whatever became of them',
  accepted: 'connections handed to the application on an ok verdict',
  reused: 'accepted connections that reused a held connection verdict (claim 5)',
  reset: 'connections cut with RST on an abnormal verdict',
  closed: 'connections cut with FIN on an abnormal verdict',
  diagnosed: 'self-diagnoses run',
  diagnosisTimeouts: 'self-diagnoses that missed their deadline',
  rejectedLimit: 'connections reset without diagnosis because maxConnections were open (not a fault)',
  idleClosed: 'held connections closed after the idle timeout',
  recheckReset: 'held connections reset because a background re-diagnosis failed',
};

export class FirmwareMetrics {
  readonly registry = new Registry();
  private readonly gates = new Set<WatchedGate>();
  private devices: DeviceStateManager | undefined;
  private boot: () => BootStatus | undefined = () => undefined;
  private readonly diagnosisSeconds: Histogram<'service'>;
  private readonly verdictFailures: Counter<'service' | 'component' | 'code'>;

  constructor(labels: { board: string }) {
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry, prefix: 'handcheck_process_' });
    const self = this;
    new Gauge({
      name: 'handcheck_component_state',
      help: 'component state: 0 unknown, 1 ok, 2 degraded, 3 failed',
      labelNames: ['component', 'kind'],
      registers: [this.registry],
      collect() {
        for (const state of self.devices?.states() ?? []) this.set({ component: state.id, kind: state.kind }, stateValues[state.state]);
      },
    });
    new Gauge({
      name: 'handcheck_watchdog_last_reset_by_watchdog',
      help: "1 when the driver's boot status says the last reset was the watchdog's (WDIOF_CARDRESET), 0 when not; absent where the driver cannot tell",
      labelNames: ['component'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const state of self.devices?.states() ?? []) {
          const value = state.kind === 'watchdog' ? state.reading?.lastResetByWatchdog : undefined;
          if (typeof value === 'boolean') this.set({ component: state.id }, value ? 1 : 0);
        }
      },
    });
    const bootGauge = (name: string, help: string, value: (boot: BootStatus) => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          const boot = self.boot();
          if (boot) this.set(value(boot));
        },
      });
    };
    bootGauge('handcheck_boot_count', 'boots of the board counted by its boot record (a firmware restart within one boot is not one)', (boot) => boot.count);
    bootGauge(
      'handcheck_boot_time_seconds',
      'when the board booted, in seconds since the Unix epoch of the board clock (uptime: time() - this)',
      (boot) => boot.bootedAt / 1000,
    );
    new Gauge({
      name: 'handcheck_last_reset_cause',
      help: 'why this boot began: 1 for the cause, 0 for the others (unknown: nothing recorded why, as after a power cut on a Pi)',
      labelNames: ['cause'],
      registers: [this.registry],
      collect() {
        this.reset();
        const boot = self.boot();
        if (boot) for (const cause of resetCauses) this.set({ cause }, boot.lastResetCause === cause ? 1 : 0);
      },
    });
    bootGauge(
      'handcheck_unclean_resets_recent',
      "boots after an unclean reset (watchdog or unknown cause) within the board's reset-loop window (watchdog resetLoopWindowS)",
      (boot) => boot.uncleanResets,
    );
    for (const [field, help] of Object.entries(gateCounters) as Array<[GateCounter, string]>) {
      new Counter({
        name: `handcheck_gate_${field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`,
        help,
        labelNames: ['service'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const gate of self.gates) {
            const stats = gate.stats();
            this.inc({ service: stats.service }, stats[field]);
          }
        },
      });
    }
    new Gauge({
      name: 'handcheck_gate_held_connections',
      help: 'connections handed to the application and still open',
      labelNames: ['service'],
      registers: [this.registry],
      collect() {
        for (const gate of self.gates) this.set({ service: gate.service }, gate.stats().held);
      },
    });
    new Gauge({
      name: 'handcheck_verdict_ok',
      help: '1 when the last verdict of the service was ok, 0 when abnormal',
      labelNames: ['service'],
      registers: [this.registry],
      collect() {
        for (const gate of self.gates) {
          const last = gate.stats().lastVerdict;
          if (last) this.set({ service: gate.service }, last.ok ? 1 : 0);
        }
      },
    });
    this.diagnosisSeconds = new Histogram({
      name: 'handcheck_diagnosis_duration_seconds',
      help: 'duration of one self-diagnosis of a service',
      labelNames: ['service'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5],
      registers: [this.registry],
    });
    this.verdictFailures = new Counter({
      name: 'handcheck_verdict_failures_total',
      help: 'failures found by self-diagnoses, by component and code',
      labelNames: ['service', 'component', 'code'],
      registers: [this.registry],
    });
  }

  watchDevices(devices: DeviceStateManager): void {
    this.devices = devices;
  }

  /** The running firmware's boot record, read when scraped. */
  watchBoot(source: () => BootStatus | undefined): void {
    this.boot = source;
  }

  watchGate(gate: WatchedGate): () => void {
    this.gates.add(gate);
    return () => this.gates.delete(gate);
  }

  /** Records one diagnosis (not a reused verdict). */
  observeDiagnosis(service: string, durationMs: number, failures: ReadonlyArray<{ component: string; code: string }>): void {
    this.diagnosisSeconds.observe({ service }, durationMs / 1000);
    for (const failure of failures) this.verdictFailures.inc({ service, component: failure.component, code: failure.code });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
